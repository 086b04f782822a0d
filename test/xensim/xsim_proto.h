/* Placeholder: the broker wire protocol is being written. */

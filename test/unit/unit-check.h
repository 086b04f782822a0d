/* The unit programs' case line: "PASS: UNIT_NAME: name", or "FAIL: UNIT_NAME: name: why (file:line)";
 * failures counts the latter (the program's exit status). Define UNIT_NAME before including. */
#ifndef XSND_UNIT_CHECK_H
#define XSND_UNIT_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(name, cond, ...)                                 \
    do {                                                       \
        if (cond) {                                            \
            printf("PASS: " UNIT_NAME ": %s\n", name);         \
        } else {                                               \
            printf("FAIL: " UNIT_NAME ": %s: ", name);         \
            printf(__VA_ARGS__);                               \
            printf(" (%s:%d)\n", __FILE__, __LINE__);          \
            failures++;                                        \
        }                                                      \
    } while (0)

#endif

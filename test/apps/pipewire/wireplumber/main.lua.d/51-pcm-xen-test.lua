-- pcm_xen's PipeWire test (test/apps/test-pipewire): WirePlumber links streams to the nodes that
-- pipewire.conf.d/50-pcm-xen.conf creates; it monitors no device, so no sound card, camera or
-- Bluetooth adapter of the machine running the test is ever opened.
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false

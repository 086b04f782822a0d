-- pcm_xen's PipeWire test: no Bluetooth monitor (see main.lua.d/51-pcm-xen-test.lua).
bluez_monitor.enabled = false

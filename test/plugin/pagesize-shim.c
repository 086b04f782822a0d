/* pagesize-shim: an LD_PRELOAD library that makes sysconf(_SC_PAGESIZE) answer 65536, as on an
 * arm64 kernel with 64 KiB pages, so that test/plugin/test-faults can check the plugin's refusal
 * on a machine with 4 KiB pages. Every other sysconf query is answered by the C library. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <unistd.h>

long sysconf(int name)
{
    static long (*real)(int);

    if (name == _SC_PAGESIZE)
        return 65536;
    if (!real)
        real = (long (*)(int))dlsym(RTLD_NEXT, "sysconf");
    return real ? real(name) : -1;
}

/* lockgap-shim: an LD_PRELOAD library that opens a race window on demand, so that a test can
 * make another thread act at one exact point instead of hoping the scheduler lands there.
 * A program armed with lockgap_arm(fn) (found with dlsym) has fn run in the arming thread just
 * before that thread's next pthread_mutex_lock called from the plugin's code
 * (libasound_module_pcm_xen.so), once. pcm-threads' "gap" mode arms it before snd_pcm_drain: the
 * drain callback's first lock comes after ioplug let its own lock go, the moment a drop from
 * another thread can slip in. Every other lock goes straight to the C library. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

static int (*lockgap_real_lock)(pthread_mutex_t *);
static void (*_Atomic lockgap_fn)(void); /* armed: run once, then cleared */
static pthread_t lockgap_thread;         /* written before lockgap_fn is set, read after */

__attribute__((constructor)) static void lockgap_init(void)
{
    lockgap_real_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
}

void lockgap_arm(void (*fn)(void));
void lockgap_arm(void (*fn)(void))
{
    lockgap_thread = pthread_self();
    atomic_store(&lockgap_fn, fn);
}

static bool lockgap_from_plugin(const void *caller)
{
    Dl_info info;

    return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libasound_module_pcm_xen");
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    void (*fn)(void) = atomic_load(&lockgap_fn);

    if (fn && pthread_equal(pthread_self(), lockgap_thread) && lockgap_from_plugin(__builtin_return_address(0)) &&
        atomic_compare_exchange_strong(&lockgap_fn, &fn, NULL))
        fn();
    if (!lockgap_real_lock)
        lockgap_init();
    return lockgap_real_lock(m);
}

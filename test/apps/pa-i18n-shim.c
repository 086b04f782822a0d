/* pa-i18n-shim: preloaded into PulseAudio, under the ASan build only, after the sanitizer runtime.
 * PulseAudio 16.1 (Debian 12) with libasan preloaded hangs before loading any module: main() ->
 * pa_init_i18n() -> bind_textdomain_codeset() waits forever for glibc's gettext lock
 * (_nl_state_lock), whose reader count is already broken (0xfffffff9) when main() starts; pactl and
 * a small program making the same two calls do not hang. Message catalogues are of no use to the
 * test (it runs in the C locale), so the two binding calls are made to do nothing: the daemon then
 * runs, and the plugin it loads is checked by ASan and UBSan like everywhere else. */
char *bindtextdomain(const char *domain, const char *dir);
char *bind_textdomain_codeset(const char *domain, const char *codeset);

char *bindtextdomain(const char *domain, const char *dir)
{
    (void)domain;
    return (char *)dir;
}

char *bind_textdomain_codeset(const char *domain, const char *codeset)
{
    (void)domain;
    return (char *)codeset;
}

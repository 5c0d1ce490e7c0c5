/* mg_signal.c — signal names (core layer). */
#include "mg/mg_signal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "mg/mg_error.h"

static const struct {
  const char *name;
  int signum;
} sig__names[] = {{"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},
                  {"ILL", SIGILL},       {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},
                  {"BUS", SIGBUS},       {"FPE", SIGFPE},   {"KILL", SIGKILL},
                  {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
                  {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},
                  {"CHLD", SIGCHLD},     {"CONT", SIGCONT}, {"STOP", SIGSTOP},
                  {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
                  {"URG", SIGURG},       {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
                  {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
                  {"IO", SIGIO},         {"SYS", SIGSYS},   {NULL, 0}};

const char *mg_signal_name(int signum) {
  for (int i = 0; sig__names[i].name; i++)
    if (sig__names[i].signum == signum)
      return sig__names[i].name;
  return NULL;
}

int mg_signal_parse(const char *text, int *out, char *err, size_t err_len) {
  const char *s = text ? text : "";
  if (s[0] >= '0' && s[0] <= '9') {
    int v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && v <= 64; i++)
      v = v * 10 + (s[i] - '0');
    if (s[i] == '\0' && v >= 1 && v <= 64) {
      if (out)
        *out = v;
      return 0;
    }
  } else {
    if (strncmp(s, "SIG", 3) == 0)
      s += 3;
    for (int i = 0; sig__names[i].name; i++)
      if (strcmp(sig__names[i].name, s) == 0) {
        if (out)
          *out = sig__names[i].signum;
        return 0;
      }
  }
  return mg_errf(err, err_len, -EINVAL, "unknown signal '%.40s' (accepted: %s)",
                 text ? text : "(null)", MG_SIGNAL_ACCEPTED);
}

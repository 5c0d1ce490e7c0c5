/* mg_signal.h — the one table of signal names (core layer): "TERM" for
 * SIGTERM, as kill(1) and the Lua API spell them (without "SIG").
 */
#ifndef MG_SIGNAL_H
#define MG_SIGNAL_H

#include "mg/mg_api.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What mg_signal_parse accepts, for error messages. */
#define MG_SIGNAL_ACCEPTED                                                     \
  "TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT, ABRT, ALRM, PIPE, "     \
  "SEGV, BUS, FPE, ILL, TRAP, XCPU, XFSZ, SYS, CHLD, WINCH, TSTP, TTIN, "      \
  "TTOU, URG, VTALRM, PROF, IO (with or without SIG), or a number 1..64"

/* "TERM" for SIGTERM; NULL for a number without a name here. Static. */
MG_API const char *mg_signal_name(int signum);

/* Parse "TERM", "SIGTERM" (upper case) or a decimal number 1..64 (as a
 * string) into *out. -EINVAL with err quoting the text and saying what is
 * accepted. */
MG_API int mg_signal_parse(const char *text, int *out, char *err,
                           size_t err_len);

#ifdef __cplusplus
}
#endif
#endif

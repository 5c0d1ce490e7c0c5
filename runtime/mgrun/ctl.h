/* ctl.h — `mgrun ctl`, the client of a running mgrun's control socket
 * (mgrun CLI layer; ctl.c: the command line and the wire, ctl_print.c:
 * the output). */
#ifndef MGRUN_CTL_H
#define MGRUN_CTL_H

#include <jansson.h>

/* Exit statuses of `mgrun ctl` (docs/cli.md). */
enum {
  MG_CTL_OK = 0,
  MG_CTL_FAILED = 1,  /* mgrun answered with an error; health: unhealthy */
  MG_CTL_USAGE = 2,   /* a bad command line */
  MG_CTL_NOANSWER = 3 /* no answer: cannot connect, timeout, closed,
                         protocol mismatch (health: 1) */
};

/* `mgrun ctl ARGS...`: argv[0] is "ctl". Returns the exit status. */
int mg_ctl_main(int argc, char **argv);

/* ctl_print.c: mgrun's answer to `cmd` (the protocol's name: status,
 * set-limit, stop, restart, store-stats, reload, health, hello, or a
 * policy's command) and one event line, for people, on stdout. */
void mg_ctl_print_answer(const char *cmd, const json_t *o);
void mg_ctl_print_event(const json_t *o);

#endif

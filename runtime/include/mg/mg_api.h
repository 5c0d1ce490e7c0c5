/* mg_api.h — MG_API marks the functions the shared libraries export
 * (libmg: the core; libmg-runtime: supervisor, bindings, host). They are
 * built with -fvisibility=hidden, so what a public header does not mark
 * stays inside them; tests/e2e/test_sdk.sh checks the exported set with
 * nm -D against the headers. */
#ifndef MG_API_H
#define MG_API_H

#if defined(__GNUC__) || defined(__clang__)
#define MG_API __attribute__((visibility("default")))
#else
#define MG_API
#endif

#endif

/* mg_name.c — the name rule of processes and stores (core layer). */
#include "mg/mg_name.h"

#include <errno.h>
#include <string.h>

#include "mg/mg_error.h"

static int name__char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* Quote up to 80 bytes of `name` with anything unprintable as '?'. */
static void name__quote(const char *name, size_t len, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 4 < cap && i < 80; i++) {
    unsigned char ch = (unsigned char)name[i];
    out[n++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
  }
  if (len > 80 && n + 4 < cap) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
}

int mg_name_check(const char *what, const char *name, size_t len, char *err,
                  size_t err_len) {
  if (!what)
    what = "name";
  if (!name || len == 0)
    return mg_errf(err, err_len, -EINVAL, "%s: required: %s", what,
                   MG_NAME_ACCEPTED);
  const char *why = NULL;
  if (memchr(name, '\0', len))
    why = "it holds a NUL byte";
  else if (len > MG_NAME_MAX)
    why = "it is longer than 64 bytes";
  else if ((len == 1 && name[0] == '.') ||
           (len == 2 && name[0] == '.' && name[1] == '.'))
    why = "\".\" and \"..\" are not names";
  for (size_t i = 0; !why && i < len; i++)
    if (!name__char(name[i]))
      why = name[i] == '/' ? "it holds a '/'"
                           : "it holds a character "
                             "outside the alphabet";
  if (!why)
    return 0;
  char q[96];
  name__quote(name, len, q, sizeof q);
  return mg_errf(err, err_len, -EINVAL, "%s: invalid name '%s' (%s): %s", what,
                 q, why, MG_NAME_ACCEPTED);
}

char *mg_name_from(const char *text, const char *fallback, char *out,
                   size_t out_len) {
  if (!out || out_len == 0)
    return out;
  const char *base = text ? strrchr(text, '/') : NULL;
  base = base ? base + 1 : (text ? text : "");
  size_t n = 0;
  for (; n < MG_NAME_MAX && n + 1 < out_len && base[n]; n++)
    out[n] = name__char(base[n]) ? base[n] : '_';
  out[n] = '\0';
  if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
    size_t fl = fallback ? strlen(fallback) : 0;
    if (fl >= out_len)
      fl = out_len - 1;
    memcpy(out, fallback ? fallback : "", fl);
    out[fl] = '\0';
  }
  return out;
}

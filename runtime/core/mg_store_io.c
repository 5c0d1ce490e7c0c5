/* mg_store_io.c — the store's files: the JSONL archive of evicted messages
 * and crash-safe snapshots (core layer; jansson). Formats:
 * docs/store-format.md.
 */
#include "mg__store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg/mg_error.h"
#include "mg/mg_name.h"

#define MG__SNAP_FORMAT "mgrun-store"
#define MG__SNAP_VERSION 1

/* ------------------------------------------------------------ base64 */

static const char mg__b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mg__b64_encode(const unsigned char *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = mg__b64[v >> 18];
    out[o++] = mg__b64[(v >> 12) & 63];
    out[o++] = mg__b64[(v >> 6) & 63];
    out[o++] = mg__b64[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)in[i + 1] << 8;
    out[o++] = mg__b64[v >> 18];
    out[o++] = mg__b64[(v >> 12) & 63];
    out[o++] = i + 1 < n ? mg__b64[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = 0;
  return o;
}

static int mg__b64_val(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

long long mg__b64_decode(const char *in, size_t n, unsigned char *out) {
  if (n % 4)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4], pad = 0;
    for (int j = 0; j < 4; j++) {
      char c = in[i + j];
      if (c == '=' && i + 4 == n && j >= 2) {
        v[j] = 0;
        pad++;
        continue;
      }
      if (pad) /* data after '=' */
        return -1;
      if ((v[j] = mg__b64_val(c)) < 0)
        return -1;
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                 (uint32_t)v[2] << 6 | (uint32_t)v[3];
    out[o++] = (unsigned char)(x >> 16);
    if (pad < 2)
      out[o++] = (unsigned char)(x >> 8);
    if (pad < 1)
      out[o++] = (unsigned char)x;
  }
  return (long long)o;
}

/* ------------------------------------------------------------ JSON */

/* Fewest significant digits (15..17) that give `v` back exactly, so that
 * 0.8 is written "0.8" and times still round-trip. */
static int mg__real_prec(double v) {
  char buf[40];
  for (int p = 15; p < 17; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, v);
    if (strtod(buf, NULL) == v)
      return p;
  }
  return 17;
}

static int mg__set(json_t *o, const char *k, json_t *v) {
  return v ? json_object_set_new(o, k, v) : -1;
}

json_t *mg__store_msg_json(const mg__msg *m) {
  mg_store_msg v;
  mg__store_view(m, &v);
  json_t *o = json_object();
  if (!o)
    return NULL;
  int bad = 0;
  bad |= mg__set(o, "id", json_integer((json_int_t)v.id));
  bad |= mg__set(o, "role", json_stringn(v.role, v.role_len));
  json_t *c = json_stringn((const char *)v.content, v.content_len);
  if (c) {
    bad |= json_object_set_new(o, "content", c);
  } else { /* not UTF-8: base64 */
    size_t cap = 4 * ((v.content_len + 2) / 3) + 1;
    char *b = malloc(cap);
    if (!b) {
      json_decref(o);
      return NULL;
    }
    size_t bl = mg__b64_encode(v.content, v.content_len, b);
    bad |= mg__set(o, "content_b64", json_stringn_nocheck(b, bl));
    free(b);
  }
  bad |= mg__set(o, "source", json_stringn(v.source, v.source_len));
  bad |= mg__set(o, "group", json_stringn(v.group, v.group_len));
  bad |= mg__set(o, "pinned", json_boolean(v.pinned));
  bad |= mg__set(o, "priority", json_integer((json_int_t)v.priority));
  bad |= mg__set(o, "tokens", json_integer((json_int_t)v.tokens));
  bad |= mg__set(o, "time", json_real(v.time));
  bad |= mg__set(o, "size", json_integer((json_int_t)v.size_bytes));
  json_t *meta = json_object();
  bad |= mg__set(o, "meta", meta);
  size_t cur = 0;
  const char *k, *val;
  while (meta && mg_store_msg_meta_next(&v, &cur, &k, &val))
    bad |= mg__set(meta, k, json_string(val));
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* ------------------------------------------------------------ archive */

void mg__store_archive_close(mg_store *s) {
  if (s->archive_f) {
    fclose(s->archive_f);
    s->archive_f = NULL;
  }
}

/* Drop whatever the FILE still buffers, cut the file back, close it. */
static void mg__archive_abort(mg_store *s, int64_t off) {
  FILE *f = s->archive_f;
  __fpurge(f);
  if (off >= 0 && ftruncate(fileno(f), (off_t)off) != 0) {
    /* not a regular file (/dev/full…): nothing was kept anyway */
  }
  fclose(f);
  s->archive_f = NULL;
}

int mg__store_archive_write(mg_store *s, mg__msg *first, size_t n,
                            mg_store_evict_reason reason, double now,
                            int64_t *off, char *err, size_t err_len) {
  *off = -1;
  if (!s->archive_f) {
    s->archive_f = fopen(s->archive_path, "ae");
    if (!s->archive_f)
      return mg_errf(err, err_len, -errno, "cannot open archive '%s': %s",
                     s->archive_path, strerror(errno));
  }
  FILE *f = s->archive_f;
  off_t pos = lseek(fileno(f), 0, SEEK_END);
  *off = pos < 0 ? -1 : (int64_t)pos;
  int rc = 0;
  size_t i = 0;
  for (mg__msg *m = first; m && i < n; m = m->vnext, i++) {
    json_t *o = mg__store_msg_json(m);
    if (!o || mg__set(o, "store", json_string(s->name)) ||
        mg__set(o, "reason", json_string(mg_store_evict_reason_name(reason))) ||
        mg__set(o, "evicted_at", json_real(now))) {
      json_decref(o);
      rc = -ENOMEM;
      break;
    }
    int p1 = mg__real_prec(m->time), p2 = mg__real_prec(now);
    int w =
        json_dumpf(o, f, JSON_COMPACT | JSON_REAL_PRECISION(p1 > p2 ? p1 : p2));
    json_decref(o);
    if (w != 0 || fputc('\n', f) == EOF) {
      rc = errno ? -errno : -EIO;
      break;
    }
  }
  if (rc == 0 && fflush(f) != 0)
    rc = errno ? -errno : -EIO;
  if (rc == 0 && s->archive_fsync && fsync(fileno(f)) != 0)
    rc = -errno;
  if (rc) {
    mg__archive_abort(s, *off);
    *off = -1;
    return mg_errf(err, err_len, rc, "cannot write archive '%s': %s",
                   s->archive_path, mg_strerror(rc));
  }
  return 0;
}

void mg__store_archive_rollback(mg_store *s, int64_t off) {
  if (s->archive_f && off >= 0) {
    fflush(s->archive_f);
    if (ftruncate(fileno(s->archive_f), (off_t)off) != 0) {
      /* cannot cut: close so the next batch starts afresh */
      mg__archive_abort(s, -1);
    }
  }
}

/* ------------------------------------------------------------ save */

static int mg__dump(json_t *v, FILE *f, double real) {
  int rc = v ? json_dumpf(v, f,
                          JSON_COMPACT | JSON_ENCODE_ANY |
                              JSON_REAL_PRECISION(mg__real_prec(real)))
             : -1;
  json_decref(v);
  return rc;
}

static int mg__save_body(const mg_store *s, FILE *f) {
  json_t *lim = json_pack(
      "{s:I,s:I,s:I,s:I,s:f}", "max_messages", (json_int_t)s->lim.max_messages,
      "max_message_size_bytes", (json_int_t)s->lim.max_message_size_bytes,
      "max_total_size_bytes", (json_int_t)s->lim.max_total_size_bytes,
      "max_tokens", (json_int_t)s->lim.max_tokens, "warn_at", s->lim.warn_at);
  if (fputs("{\"format\":\"" MG__SNAP_FORMAT "\",\"version\":1,\"name\":", f) <
          0 ||
      mg__dump(json_string(s->name), f, 0) || fputs(",\"limits\":", f) < 0 ||
      mg__dump(lim, f, s->lim.warn_at) ||
      fprintf(f,
              ",\"next_id\":%" PRIu64 ",\"message_count\":%" PRIu64
              ",\"total_size_bytes\":%" PRIu64 ",\"messages\":[",
              s->next_id, s->count, s->total_bytes) < 0)
    return -1;
  for (const mg__msg *m = s->head; m; m = m->next) {
    if (fputs(m == s->head ? "\n" : ",\n", f) < 0 ||
        mg__dump(mg__store_msg_json(m), f, m->time))
      return -1;
  }
  return fputs("\n]}\n", f) < 0 ? -1 : 0;
}

static int mg__save_locked(void *ud, const mg_store *s) {
  return mg__save_body(s, ud);
}

int mg_store_save(const mg_store *s, const char *path, char *err,
                  size_t err_len) {
  char tmp[PATH_MAX + 32];
  if (!path || !*path)
    return mg_errf(err, err_len, -EINVAL,
                   "cannot save store snapshot: the path is empty");
  if (strlen(path) >= PATH_MAX)
    return mg_errf(err, err_len, -ENAMETOOLONG,
                   "cannot save store snapshot: the path is %zu bytes long, "
                   "at most %d are accepted",
                   strlen(path), PATH_MAX - 1);
  /* A temp name of its own per call (two threads may save the same path
   * at once): mkostemp creates it exclusively. */
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd >= 0 && fchmod(fd, 0644) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    errno = e;
    fd = -1;
  }
  if (fd < 0)
    return mg_errf(err, err_len, -errno,
                   "cannot save store snapshot: cannot create '%s': %s", tmp,
                   strerror(errno));
  FILE *f = fdopen(fd, "w");
  if (!f) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return mg_errf(err, err_len, -e, "cannot save store snapshot '%s': %s",
                   path, strerror(e));
  }
  /* a consistent copy: hold the lock while writing */
  errno = 0;
  int rc = 0;
  if (mg_store_read(s, mg__save_locked, f) != 0 || ferror(f))
    rc = errno ? -errno : -EIO;
  if (fflush(f) != 0 && !rc)
    rc = errno ? -errno : -EIO;
  if (!rc && fsync(fd) != 0)
    rc = -errno;
  if (fclose(f) != 0 && !rc)
    rc = errno ? -errno : -EIO;
  if (rc) {
    unlink(tmp);
    return mg_errf(err, err_len, rc, "cannot write store snapshot '%s': %s",
                   tmp, mg_strerror(rc));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return mg_errf(err, err_len, -e, "cannot rename '%s' to '%s': %s", tmp,
                   path, strerror(e));
  }
  /* make the rename durable */
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == dir)
    dir[1] = 0;
  else
    *slash = 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    int e = errno;
    if (dfd >= 0)
      close(dfd);
    return mg_errf(err, err_len, -e,
                   "store snapshot '%s' written, but its directory '%s' "
                   "could not be synced: %s",
                   path, dir, strerror(e));
  }
  close(dfd);
  return 0;
}

/* ------------------------------------------------------------ load */

#define MG__LERR(code, ...) mg_errf(err, err_len, (code), __VA_ARGS__)

static int mg__get_u64(json_t *o, const char *k, int required, uint64_t *out) {
  json_t *v = json_object_get(o, k);
  if (!v)
    return required ? -1 : 1;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return -1;
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

/* A text field: absent = "", else a string without NUL. */
static int mg__get_text(json_t *o, const char *k, const char **out) {
  json_t *v = json_object_get(o, k);
  *out = NULL;
  if (!v)
    return 0;
  if (!json_is_string(v) ||
      strlen(json_string_value(v)) != json_string_length(v))
    return -1;
  *out = json_string_value(v);
  return 0;
}

static int mg__load_msg(mg_store *s, json_t *jm, size_t i, uint64_t next_id,
                        const char *path, char *err, size_t err_len) {
  char why[400];
  if (!json_is_object(jm))
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s': messages[%zu] is not an object", path,
                    i);
  uint64_t id = 0;
  int ir = mg__get_u64(jm, "id", 1, &id);
  if (ir || id == 0 || id >= next_id) {
    char found[48];
    json_t *ji = json_object_get(jm, "id");
    if (!ji)
      snprintf(found, sizeof found, "is missing");
    else if (json_is_integer(ji))
      snprintf(found, sizeof found, "%" JSON_INTEGER_FORMAT " is out of range",
               json_integer_value(ji));
    else
      snprintf(found, sizeof found, "is not an integer");
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s': messages[%zu]: \"id\" %s: it must "
                    "be an integer from 1 to next_id - 1 (%" PRIu64 ")",
                    path, i, found, next_id - 1);
  }
  mg_store_input in = {0};
  const char *bad = NULL;
  if (mg__get_text(jm, "role", &in.role))
    bad = "role";
  else if (mg__get_text(jm, "source", &in.source))
    bad = "source";
  else if (mg__get_text(jm, "group", &in.group))
    bad = "group";
  if (bad)
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s': messages[%zu] (id %" PRIu64
                    "): \"%s\" must be a string without NUL",
                    path, i, id, bad);
  /* The optional scalars: the first of the wrong type is named. */
  json_t *jp = json_object_get(jm, "pinned");
  json_t *jpr = json_object_get(jm, "priority");
  json_t *jt = json_object_get(jm, "time");
  int tr = mg__get_u64(jm, "tokens", 0, &in.tokens);
  const char *must = NULL;
  if (jp && !json_is_boolean(jp))
    bad = "pinned", must = "true or false";
  else if (jpr && !json_is_integer(jpr))
    bad = "priority", must = "an integer";
  else if (tr < 0)
    bad = "tokens", must = "a non-negative integer";
  else if (jt && !json_is_number(jt))
    bad = "time", must = "a number";
  if (bad)
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s': messages[%zu]: \"%s\" must be %s",
                    path, i, bad, must);
  in.pinned = jp && json_is_true(jp);
  in.priority = jpr ? (int64_t)json_integer_value(jpr) : 0;
  in.has_tokens = tr == 0;
  double time = jt ? json_number_value(jt) : 0.0;
  /* meta */
  mg_store_meta meta[MG_STORE_META_MAX];
  json_t *jmeta = json_object_get(jm, "meta");
  if (jmeta) {
    if (!json_is_object(jmeta) || json_object_size(jmeta) > MG_STORE_META_MAX)
      return MG__LERR(MG_ECORRUPT,
                      "store snapshot '%s': messages[%zu]: \"meta\" must be an "
                      "object of at most %u strings",
                      path, i, MG_STORE_META_MAX);
    const char *k;
    json_t *v;
    json_object_foreach(jmeta, k, v) {
      if (!json_is_string(v) ||
          strlen(json_string_value(v)) != json_string_length(v))
        return MG__LERR(MG_ECORRUPT,
                        "store snapshot '%s': messages[%zu]: meta \"%.64s\" "
                        "must be a string without NUL",
                        path, i, k);
      meta[in.meta_count].key = k;
      meta[in.meta_count].value = json_string_value(v);
      in.meta_count++;
    }
    in.meta = meta;
  }
  /* content */
  json_t *jc = json_object_get(jm, "content");
  json_t *jb = json_object_get(jm, "content_b64");
  unsigned char *buf = NULL;
  size_t buf_size = 0;
  if ((jc && jb) || (!jc && !jb) || (jc && !json_is_string(jc)) ||
      (jb && !json_is_string(jb)))
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s': messages[%zu]: exactly one of "
                    "\"content\" (a string) or \"content_b64\" (base64) is "
                    "required",
                    path, i);
  if (jc) {
    in.content = json_string_value(jc);
    in.content_len = json_string_length(jc);
  } else {
    size_t bl = json_string_length(jb);
    buf_size = 3 * (bl / 4) + 1;
    buf = mg__store_malloc(s, buf_size);
    if (!buf)
      return MG__LERR(-ENOMEM, "out of memory loading '%s'", path);
    long long dl = mg__b64_decode(json_string_value(jb), bl, buf);
    if (dl < 0) {
      mg__store_free_mem(s, buf, buf_size);
      return MG__LERR(MG_ECORRUPT,
                      "store snapshot '%s': messages[%zu]: \"content_b64\" is "
                      "not valid base64",
                      path, i);
    }
    in.content = buf;
    in.content_len = (size_t)dl;
  }
  int rc = mg__store_insert_raw(s, &in, id, time, why, sizeof why);
  mg__store_free_mem(s, buf, buf_size);
  if (rc)
    return MG__LERR(rc,
                    "store snapshot '%s': messages[%zu] (id %" PRIu64 "): %s",
                    path, i, id, why);
  return 0;
}

int mg_store_load(const char *path, const mg_store_options *opts,
                  mg_store **out, char *err, size_t err_len) {
  *out = NULL;
  FILE *f = fopen(path, "re");
  if (!f)
    return MG__LERR(-errno, "cannot open store snapshot '%s': %s", path,
                    strerror(errno));
  /* jansson reads a directory (or a failing file) as an empty input: say
   * what it is instead of "truncated" */
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    return MG__LERR(-EISDIR,
                    "cannot load store snapshot '%s': it is a directory, not "
                    "a snapshot file",
                    path);
  }
  json_error_t je;
  errno = 0;
  json_t *root = json_loadf(f, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
  int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
  fclose(f);
  if (!root && rerr)
    return MG__LERR(-rerr, "cannot read store snapshot '%s': %s", path,
                    strerror(rerr));
  if (!root && je.position == 0)
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s' is empty (0 bytes): a snapshot is "
                    "one JSON object",
                    path);
  if (!root)
    return MG__LERR(MG_ECORRUPT,
                    "store snapshot '%s' is truncated or corrupt: %s (line %d, "
                    "column %d, position %d)",
                    path, je.text, je.line, je.column, je.position);
  int rc = 0;
  mg_store *s = NULL;
  json_t *jf = json_object_get(root, "format");
  json_t *jv = json_object_get(root, "version");
  if (!json_is_object(root) || !json_is_string(jf) ||
      strcmp(json_string_value(jf), MG__SNAP_FORMAT) != 0) {
    rc = MG__LERR(MG_ECORRUPT,
                  "'%s' is not an mgrun store snapshot (\"format\" is %s%s%s, "
                  "expected \"" MG__SNAP_FORMAT "\")",
                  path, json_is_string(jf) ? "\"" : "",
                  json_is_string(jf) ? json_string_value(jf) : "missing",
                  json_is_string(jf) ? "\"" : "");
    goto done;
  }
  if (!json_is_integer(jv) || json_integer_value(jv) != MG__SNAP_VERSION) {
    rc = json_is_integer(jv)
             ? MG__LERR(MG_EVERSION,
                        "store snapshot '%s' has version %" JSON_INTEGER_FORMAT
                        "; this mgrun reads version %d",
                        path, json_integer_value(jv), MG__SNAP_VERSION)
             : MG__LERR(MG_ECORRUPT,
                        "store snapshot '%s' has no integer \"version\"", path);
    goto done;
  }
  mg_store_options o;
  if (opts)
    o = *opts;
  else
    mg_store_options_init(&o);
  json_t *jl = json_object_get(root, "limits");
  json_t *jw = jl ? json_object_get(jl, "warn_at") : NULL;
  uint64_t next_id = 0;
  if (!json_is_object(jl) ||
      mg__get_u64(jl, "max_messages", 1, &o.limits.max_messages) ||
      mg__get_u64(jl, "max_message_size_bytes", 1,
                  &o.limits.max_message_size_bytes) ||
      mg__get_u64(jl, "max_total_size_bytes", 1,
                  &o.limits.max_total_size_bytes) ||
      mg__get_u64(jl, "max_tokens", 1, &o.limits.max_tokens) ||
      !json_is_number(jw)) {
    rc = MG__LERR(MG_ECORRUPT,
                  "store snapshot '%s': \"limits\" must be an object with "
                  "non-negative integers max_messages, max_message_size_bytes, "
                  "max_total_size_bytes, max_tokens and a number warn_at",
                  path);
    goto done;
  }
  o.limits.warn_at = json_number_value(jw);
  char why[300];
  if (mg_store_limits_validate(&o.limits, why, sizeof why)) {
    rc = MG__LERR(MG_ECORRUPT, "store snapshot '%s': limits: %s", path, why);
    goto done;
  }
  if (mg__get_u64(root, "next_id", 1, &next_id) || next_id == 0 ||
      next_id > MG_STORE_ID_MAX) {
    rc = MG__LERR(MG_ECORRUPT,
                  "store snapshot '%s': \"next_id\" must be a positive integer "
                  "of at most %" PRIu64,
                  path, (uint64_t)MG_STORE_ID_MAX);
    goto done;
  }
  /* the file's name follows the rule even when opts gives another; a NUL
   * inside it (\u0000) must not cut it short */
  json_t *jn = json_object_get(root, "name");
  if (!json_is_string(jn)) {
    rc = MG__LERR(MG_ECORRUPT,
                  "store snapshot '%s': \"name\" is %s; it must be a store "
                  "name: " MG_NAME_ACCEPTED,
                  path, jn ? "not a string" : "missing");
    goto done;
  }
  if (mg_name_check("store name", json_string_value(jn), json_string_length(jn),
                    why, sizeof why) != 0) {
    rc = MG__LERR(MG_ECORRUPT, "store snapshot '%s': %s", path, why);
    goto done;
  }
  if (!o.name)
    o.name = json_string_value(jn);
  json_t *jms = json_object_get(root, "messages");
  if (!json_is_array(jms)) {
    rc = MG__LERR(MG_ECORRUPT,
                  "store snapshot '%s': \"messages\" must be an array", path);
    goto done;
  }
  /* the file's part was checked above: what fails here is an option */
  if ((rc = mg_store_new(&o, &s, why, sizeof why)) != 0) {
    rc = MG__LERR(rc, "cannot load store snapshot '%s': %s", path, why);
    goto done;
  }
  size_t i;
  json_t *jm;
  json_array_foreach(jms, i, jm) {
    if ((rc = mg__load_msg(s, jm, i, next_id, path, err, err_len)) != 0)
      goto done;
  }
  s->next_id = next_id;
  mg__store_after_load(s);
  if (mg_store_check(s, why, sizeof why) != 0) {
    rc = MG__LERR(MG_ECORRUPT, "store snapshot '%s': %s", path, why);
    goto done;
  }
done:
  json_decref(root);
  if (rc) {
    mg_store_free(s);
    return rc;
  }
  mg__store_load_warn(s);
  *out = s;
  return 0;
}

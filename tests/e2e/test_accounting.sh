# Honest accounting: samples and p:memory() split resident memory into
# anon, file and shmem (the process, /proc/PID/status) and, with a cgroup,
# into cgroup_anon, cgroup_file and cgroup_shmem (the group's memory.stat).
# A child that maps and reads a file shows file bytes; one that touches
# anonymous memory shows anon bytes, shared anonymous memory shmem bytes
# (not counted again in file); a file already in the page cache is
# resident in the child but charged to the group that read it first.
source "$(dirname "$0")/lib.sh"
MMAP="$MG_TEST_BINDIR/mg_mmap"
MIB=1048576
FILE="$T_TMP/model.bin"

# A 64 MiB "model" written around the page cache (O_DIRECT), so that the
# first child to read it is the one its pages are charged to.
dd if=/dev/urandom of="$FILE" bs=1M count=64 oflag=direct status=none ||
  dd if=/dev/urandom of="$FILE" bs=1M count=64 status=none
sync "$FILE"
dd if="$FILE" iflag=nocache count=0 status=none 2>/dev/null || true

# One child: `mg_mmap --file FILE --anon 32 --shmem 16` under ENFORCE;
# when a sample shows it has read the file and touched its anonymous memory
# and all 16 MiB of its shared memory (the last it touches: a sample taken
# while it still touched them showed 15.5 MiB under load), print that
# sample and p:memory(), then stop it.
p=$(policy acct <<'LUA'
local mode, file = os.getenv("ENFORCE"), os.getenv("FILE")
local want_anon, want_file, want_shmem = 30 * 2^20, 60 * 2^20, 16 * 2^20
local p = assert(mg.spawn { name = "model", enforce = mode,
  limit = mode ~= "none" and "512M" or nil, sample_ms = 50, stdout = "null",
  cmd = { os.getenv("MMAP"), "--file", file, "--anon", "32", "--shmem", "16",
          "--hold", "30" } })
local function show(tag, t)
  local keys = { "rss", "anon", "file", "shmem", "cgroup_current",
                 "cgroup_anon", "cgroup_file", "cgroup_shmem" }
  local out = { tag }
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(t[k]) end
  print(table.concat(out, " "))
end
local done = false
local deadline = mg.after(20000, function()
  if not done then print("timeout") p:stop(0) end
end)
p:on("exit", function() deadline:stop() end)
p:on("sample", function(q, s)
  if done or s.anon < want_anon or s.file < want_file or s.shmem < want_shmem
  then return end
  done = true
  show("sample", s)
  local m = assert(q:memory())
  show("memory", m)
  print("memory_sum", m.rss == m.anon + m.file + m.shmem, m.name)
  q:stop(0)
end)
LUA
)

# field NAME LINE → the value of NAME= in LINE
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ge() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2)); } # ge VALUE MIN
lt() { [[ $1 =~ ^[0-9]+$ ]] && (($1 < $2)); }  # lt VALUE MAX

# ------------------------------------------------ the process's own split
out=$(ENFORCE=none FILE="$FILE" MMAP="$MMAP" "$MGRUN" "$p" 2>&1)
check "none: mgrun exits 0" test $? -eq 0
s=$(grep '^sample ' <<<"$out")
m=$(grep '^memory ' <<<"$out")
check "none: a sample came once the file was read" test -n "$s"
check "none: sample file >= 64 MiB (the mapped file's pages)" ge "$(field file "$s")" $((64 * MIB))
check "none: sample anon >= 32 MiB and below the file's size" \
  bash -c '(($1 >= 32 * 1048576 && $1 < 64 * 1048576))' _ "$(field anon "$s")"
check "none: sample shmem >= 16 MiB and below the file's size" \
  bash -c '(($1 >= 16 * 1048576 && $1 < 64 * 1048576))' _ "$(field shmem "$s")"
check "none: file does not count shmem again (< 80 MiB)" \
  lt "$(field file "$s")" $((80 * MIB))
check "none: p:memory() has anon, file and shmem" \
  bash -c '[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $3 =~ ^[0-9]+$ ]]' _ \
  "$(field anon "$m")" "$(field file "$m")" "$(field shmem "$m")"
check "none: p:memory() rss = anon + file + shmem, one read, with its name" \
  grep -q "^memory_sum	true	mg_mmap" <<<"$out"
((T_FAIL > 0 || ${MG_TEST_VERBOSE:-0} == 1)) && echo "$out"

# ------------------------------------------------ the group's split
writable=$("$MGRUN" --probe --json | jq -r .cgroup.writable)
if [[ $writable != true ]]; then
  echo "$T_PASS passed, $T_FAIL failed (before the cgroup part)"
  ((T_FAIL == 0)) || exit 1
  skip_cgroup "no writable cgroup memory hierarchy: $("$MGRUN" --probe --json | jq -r .cgroup.writable_reason)"
fi

# Cold: the none run above read the file into the page cache (charged to
# the group this test runs in); drop this file's pages again.
dd if="$FILE" iflag=nocache count=0 status=none
fails0=$T_FAIL
out=$(ENFORCE=cgroup FILE="$FILE" MMAP="$MMAP" "$MGRUN" "$p" 2>&1)
check "cgroup cold: mgrun exits 0" test $? -eq 0
s=$(grep '^sample ' <<<"$out")
m=$(grep '^memory ' <<<"$out")
check "cgroup cold: a sample came" test -n "$s"
check "cgroup cold: process file >= 64 MiB" ge "$(field file "$s")" $((64 * MIB))
check "cgroup cold: cgroup_file >= 60 MiB (the group faulted the file in)" \
  ge "$(field cgroup_file "$s")" $((60 * MIB))
check "cgroup cold: cgroup_file without the shmem (< 72 MiB)" \
  lt "$(field cgroup_file "$s")" $((72 * MIB))
check "cgroup cold: cgroup_shmem >= 16 MiB" ge "$(field cgroup_shmem "$s")" $((16 * MIB))
check "cgroup cold: cgroup_anon >= 32 MiB" ge "$(field cgroup_anon "$s")" $((32 * MIB))
check "cgroup cold: cgroup_current >= cgroup_anon + cgroup_file + cgroup_shmem" \
  bash -c '(($1 >= $2 + $3 + $4))' _ "$(field cgroup_current "$s")" \
  "$(field cgroup_anon "$s")" "$(field cgroup_file "$s")" \
  "$(field cgroup_shmem "$s")"
check "cgroup cold: p:memory() has the cgroup split too" \
  ge "$(field cgroup_file "$m")" $((60 * MIB))
((T_FAIL > fails0 || ${MG_TEST_VERBOSE:-0} == 1)) && echo "$out"

# Cached: the file's pages stay in the page cache, charged (after the cold
# run's group was removed) to its parent. A new group maps and reads them:
# resident in the process, not charged to its group.
fails0=$T_FAIL
out=$(ENFORCE=cgroup FILE="$FILE" MMAP="$MMAP" "$MGRUN" "$p" 2>&1)
check "cgroup cached: mgrun exits 0" test $? -eq 0
s=$(grep '^sample ' <<<"$out")
check "cgroup cached: process file >= 64 MiB" ge "$(field file "$s")" $((64 * MIB))
check "cgroup cached: cgroup_file < 16 MiB (charged to whoever read it first)" \
  lt "$(field cgroup_file "$s")" $((16 * MIB))
check "cgroup cached: cgroup_anon >= 32 MiB (its own anonymous memory is)" \
  ge "$(field cgroup_anon "$s")" $((32 * MIB))
((T_FAIL > fails0 || ${MG_TEST_VERBOSE:-0} == 1)) && echo "$out"
finish

#!/bin/sh
# collect-rootfs.sh BINARY OUTDIR
#
# Lays out the complete root filesystem of healthprobe's runtime image in
# OUTDIR: the binary as /healthprobe, the shared libraries it loads (what ldd,
# or the dynamic loader's --list, reports; nothing for a static binary), a
# minimal /etc/passwd and /etc/group with the non-root user 65532 (nonroot),
# /etc/nsswitch.conf, the CA certificate bundle, and a sticky /tmp.
#
# Used by the Dockerfile's build stage (the final stage is FROM scratch and
# copies OUTDIR) and by tests/docker/run. POSIX sh: runs under busybox.
set -eu

bin=${1:?usage: collect-rootfs.sh BINARY OUTDIR}
out=${2:?usage: collect-rootfs.sh BINARY OUTDIR}
[ -f "$bin" ] || { echo "collect-rootfs: no binary at $bin" >&2; exit 1; }

mkdir -p "$out/etc/ssl/certs" "$out/tmp" "$out/home/nonroot"
cp "$bin" "$out/healthprobe"
chmod 0755 "$out/healthprobe"
chmod 1777 "$out/tmp"
chown 65532:65532 "$out/home/nonroot" 2>/dev/null || true

# The libraries: ldd where it exists (glibc's libc-bin), else the dynamic
# loader itself, which is what ldd runs.
list_libs() {
  if command -v ldd >/dev/null 2>&1; then
    ldd "$1" 2>&1 || true
    return
  fi
  for ld in /lib64/ld-linux-*.so.* /lib/ld-linux*.so.* /lib/*/ld-linux*.so.* /lib/ld-musl-*.so.*; do
    if [ -x "$ld" ]; then
      "$ld" --list "$1" 2>&1 || true
      return
    fi
  done
  echo "statically linked (no ldd, no dynamic loader found)"
}

n=0
list_libs "$bin" > "$out/.libs"
while read -r first second third _; do
  case "$second" in
    "=>") path=$third ;;           # libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)
    *) path=$first ;;              # /lib64/ld-linux-x86-64.so.2 (0x...)
  esac
  case "$path" in
    /*)
      [ -e "$path" ] || { echo "collect-rootfs: $bin needs $path, which is missing" >&2; exit 1; }
      mkdir -p "$out$(dirname "$path")"
      cp -L "$path" "$out$path"
      n=$((n + 1))
      ;;
  esac
done < "$out/.libs"
if grep -q "not found" "$out/.libs"; then
  echo "collect-rootfs: unresolved libraries:" >&2
  grep "not found" "$out/.libs" >&2
  exit 1
fi
rm -f "$out/.libs"

cat > "$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat > "$out/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
echo "hosts: files dns" > "$out/etc/nsswitch.conf"

ca=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
  if [ -f "$f" ]; then ca=$f; break; fi
done
if [ -n "$ca" ]; then
  cp -L "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
else
  echo "collect-rootfs: no CA bundle found: TLS checks will fail in the image" >&2
  exit 1
fi

echo "collect-rootfs: $out holds /healthprobe, $n shared libraries, passwd (nonroot 65532), CA bundle"

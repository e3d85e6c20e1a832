#!/usr/bin/env bash
# Builds the one kuberhealthy image on this machine and proves what it is: FROM scratch, a
# static binary, a non-root user, no shell. The repository's Dockerfile builds the binary in
# a rust image, which cannot be pulled here; Dockerfile.local packages a static binary built
# by the local toolchain instead (same final stage). buildah (Debian's package) builds it with
# the vfs storage driver and chroot isolation, so no daemon and no privileges beyond root.
#
#   e2e/tools/test-image.sh                 build, verify, clean up
#   e2e/tools/test-image.sh --archive PATH  also write the image as a docker-archive to PATH
#                                           (docker load / kind load image-archive / podman load)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

archive=""
if [ "${1:-}" = "--archive" ]; then
  archive=${2:?--archive needs a path}
fi

fail() { echo "test-image: FAIL: $*" >&2; exit 1; }

if ! command -v buildah >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || fail "buildah is not installed and this is not root: apt-get install buildah"
  echo "test-image: installing Debian's buildah package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi

target=x86_64-unknown-linux-gnu
echo "test-image: building a static kuberhealthy (glibc, crt-static, release)" >&2
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
  --target "$target" --bin kuberhealthy
binary="target/$target/release/kuberhealthy"
version=$("$binary" --version | awk '{print $2}')
[ -n "$version" ] || fail "$binary --version printed no version"

# Static: no interpreter, no shared libraries.
file_says=$(file -b "$binary")
case "$file_says" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) fail "$binary is not static: $file_says" ;;
esac
if ldd "$binary" 2>&1 | grep -q '=>'; then
  fail "$binary needs shared libraries: $(ldd "$binary" 2>&1)"
fi

work=$(mktemp -d /tmp/kh-image-XXXXXX)
store=(--storage-driver vfs --root "$work/root" --runroot "$work/runroot")
export BUILDAH_ISOLATION=chroot
container=""
cleanup() {
  if [ -n "$container" ]; then buildah "${store[@]}" rm "$container" >/dev/null 2>&1 || true; fi
  buildah "${store[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The build context holds the binary only.
mkdir -p "$work/context"
cp "$binary" "$work/context/kuberhealthy"
image="localhost/kuberhealthy:$version"
echo "test-image: buildah bud -f Dockerfile.local -t $image" >&2
buildah "${store[@]}" bud --quiet -f Dockerfile.local -t "$image" "$work/context" >/dev/null

# The image's configuration.
config() { buildah "${store[@]}" inspect --type image --format "$1" "$image"; }
[ "$(config '{{.OCIv1.Config.User}}')" = "65532:65532" ] || fail "user is $(config '{{.OCIv1.Config.User}}'), not 65532:65532"
[ "$(config '{{.OCIv1.Config.Entrypoint}}')" = "[/kuberhealthy]" ] || fail "entrypoint is $(config '{{.OCIv1.Config.Entrypoint}}')"
[ "$(config '{{.OCIv1.Config.Cmd}}')" = "[run]" ] || fail "cmd is $(config '{{.OCIv1.Config.Cmd}}')"
[ "$(config '{{len .OCIv1.RootFS.DiffIDs}}')" = "1" ] || fail "FROM scratch has one layer, found $(config '{{len .OCIv1.RootFS.DiffIDs}}')"
case "$(config '{{.OCIv1.Config.ExposedPorts}}')" in *8080/tcp*) ;; *) fail "port 8080 is not exposed" ;; esac

# The root filesystem is the binary and nothing else: no shell, no libraries.
container=$(buildah "${store[@]}" from --quiet "$image")
rootfs=$(buildah "${store[@]}" mount "$container")
files=$(cd "$rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$files" = "./kuberhealthy " ] || fail "the image holds more than the binary: $files"

# It runs, as the image's non-root user, without a shell.
run() { buildah "${store[@]}" run "$container" -- "$@"; }
out=$(run /kuberhealthy --version) || fail "/kuberhealthy --version did not run in the image"
[ "$out" = "kuberhealthy $version" ] || fail "/kuberhealthy --version printed: $out"
run /kuberhealthy rbac | grep -q 'kind: ClusterRole' || fail "/kuberhealthy rbac did not print the RBAC"
if run /bin/sh -c true >/dev/null 2>&1; then fail "the image has a shell"; fi

# It reads the chart's config file as `kuberhealthy run` does, through a read-only mount.
helm=$(bash e2e/tools/build-helm.sh)
"$helm" template kh charts/kuberhealthy -n monitoring --show-only templates/configmap.yaml \
  | sed -n '/kuberhealthy.yaml: |/,$p' | tail -n +2 | sed 's/^    //' >"$work/kuberhealthy.yaml"
settings=$(buildah "${store[@]}" run -v "$work/kuberhealthy.yaml:/etc/config/kuberhealthy.yaml:ro" \
  --env POD_NAME=kh-0 --env POD_NAMESPACE=monitoring "$container" -- \
  /kuberhealthy run --print-config --config /etc/config/kuberhealthy.yaml) \
  || fail "kuberhealthy run --print-config refused the chart's config file in the image"
echo "$settings" | grep -q '"maxKHJobAge": "15m0s"' || fail "unexpected settings: $settings"

if [ -n "$archive" ]; then
  mkdir -p "$(dirname "$archive")"
  rm -f "$archive"
  buildah "${store[@]}" push --quiet "$image" "docker-archive:$archive:kuberhealthy:$version"
  echo "test-image: wrote $archive (kuberhealthy:$version)" >&2
fi

size=$(du -h "$binary" | cut -f1)
echo "test-image: OK: $image FROM scratch, one static binary ($size), user 65532:65532, no shell; it runs and reads the chart's config"

#!/bin/sh
# Installs vmigrate from a built checkout (npm ci && npm run build):
#   PREFIX (default /opt/vmigrate)            package.json, dist/src, native/, node_modules (prod only)
#   BINDIR (default /usr/local/bin)            vmigrated and vmigrate wrappers (exec node, same PID)
#   CONFDIR (default /etc/vmigrate)            vmigrated.json default config, only if none exists
#   UNITDIR (default /etc/systemd/system)      vmigrated.service
# then `systemctl daemon-reload` when systemd runs (and `enable --now` with --enable).
# --destdir DIR stages everything under DIR (packaging, tests) and touches nothing else.
set -eu

PREFIX=/opt/vmigrate
BINDIR=/usr/local/bin
CONFDIR=/etc/vmigrate
UNITDIR=/etc/systemd/system
DESTDIR=
NODE=
ENABLE=no

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; echo "Usage: $0 [--prefix DIR] [--bindir DIR] [--unitdir DIR] [--confdir DIR] [--destdir DIR] [--node PATH] [--enable]"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --bindir) BINDIR=$2; shift 2 ;;
    --unitdir) UNITDIR=$2; shift 2 ;;
    --confdir) CONFDIR=$2; shift 2 ;;
    --destdir) DESTDIR=$2; shift 2 ;;
    --node) NODE=$2; shift 2 ;;
    --enable) ENABLE=yes; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
NODE=${NODE:-$(command -v node || true)}
[ -n "$NODE" ] && [ -x "$NODE" ] || { echo "install.sh: node not found (use --node PATH)" >&2; exit 1; }
major=$("$NODE" -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "install.sh: node >= 20 needed, $NODE is $("$NODE" -v)" >&2; exit 1; }
[ -f "$SRC/dist/src/daemon/main.js" ] && [ -d "$SRC/node_modules" ] ||
  { echo "install.sh: $SRC is not built: run npm ci && npm run build first" >&2; exit 1; }

# stage next to the target, then swap, so a running daemon never sees a half-copied tree
target="$DESTDIR$PREFIX"
stage="$target.new.$$"
mkdir -p "$(dirname "$target")"
rm -rf "$stage"
mkdir -p "$stage/dist"
cp -a "$SRC/package.json" "$stage/"
[ -f "$SRC/package-lock.json" ] && cp -a "$SRC/package-lock.json" "$stage/"
cp -a "$SRC/dist/src" "$stage/dist/src"
[ -d "$SRC/native" ] && cp -a "$SRC/native" "$stage/native"
cp -a "$SRC/node_modules" "$stage/node_modules"
# drop dev dependencies; --ignore-scripts: the native addons are already built
if command -v npm >/dev/null 2>&1; then
  (cd "$stage" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) ||
    echo "install.sh: npm prune failed, dev dependencies stay installed" >&2
fi
if [ -d "$target" ]; then
  rm -rf "$target.old"
  mv "$target" "$target.old"
fi
mv "$stage" "$target"
rm -rf "$target.old"

mkdir -p "$DESTDIR$BINDIR"
for pair in vmigrated:daemon/main.js vmigrate:cli/main.js; do
  name=${pair%%:*}
  printf '#!/bin/sh\nexec %s %s/dist/src/%s "$@"\n' "$NODE" "$PREFIX" "${pair#*:}" > "$DESTDIR$BINDIR/$name"
  chmod 0755 "$DESTDIR$BINDIR/$name"
done

mkdir -p "$DESTDIR$CONFDIR"
# the agent's certificate and key go here (README: Security model); TLS is on by default
install -d -m 0700 "$DESTDIR$CONFDIR/pki"
if [ ! -e "$DESTDIR$CONFDIR/pki/agent.pem" ]; then
  echo "install.sh: put ca.pem, agent.pem and agent-key.pem in $CONFDIR/pki before starting vmigrated (vmigrate pki issue --role peer ...)"
fi
if [ -e "$DESTDIR$CONFDIR/vmigrated.json" ]; then
  echo "install.sh: keeping existing $CONFDIR/vmigrated.json"
else
  install -m 0644 "$SRC/systemd/vmigrated.json" "$DESTDIR$CONFDIR/vmigrated.json"
fi

mkdir -p "$DESTDIR$UNITDIR"
sed -e "s#^ExecStart=/usr/local/bin/vmigrated #ExecStart=$BINDIR/vmigrated #" \
  -e "s#--config /etc/vmigrate/vmigrated.json#--config $CONFDIR/vmigrated.json#" "$SRC/systemd/vmigrated.service" \
  > "$DESTDIR$UNITDIR/vmigrated.service"
chmod 0644 "$DESTDIR$UNITDIR/vmigrated.service"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$ENABLE" = yes ]; then systemctl enable --now vmigrated.service; fi
  echo "installed; start with: systemctl enable --now vmigrated"
else
  echo "installed under ${DESTDIR:-/} (systemd not running: no daemon-reload)"
fi
echo "config: $CONFDIR/vmigrated.json (listen defaults to 127.0.0.1:4411; set \"listen\" for remote managers)"

#!/bin/sh
# Install the MP Dashboard systemd units for the directory where the project is installed.
#
#   sudo systemd/install.sh                     # units for this checkout, into /etc/systemd/system
#   sudo systemd/install.sh --app-dir /opt/mp-dashboard
#   systemd/install.sh --dest /tmp/units --no-user --env-file /tmp/units/env   # try it out
#
# It renders the *.in templates beside this script (@APP_DIR@, @USER@, @ENV_FILE@, @STATE_DIR@),
# creates the static system user if missing, creates the root-only environment file from the
# project's .env.example if missing, and prints the systemctl commands to enable the units.
# It never enables or starts anything itself, and never overwrites an existing environment file.
set -eu

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd -P)
APP_DIR=$(cd "$SCRIPT_DIR/.." && pwd -P)
DEST=/etc/systemd/system
SERVICE_USER=mp-dashboard
ENV_FILE=/etc/mp-dashboard/env
# Must match StateDirectory=mp-dashboard in the units (systemd creates /var/lib/<name>).
STATE_DIR=/var/lib/mp-dashboard
CREATE_USER=1
CREATE_ENV=1
CREDENTIALS=0
DEST_GIVEN=0

usage() {
    cat <<EOF
Usage: $0 [options]

  --app-dir DIR     where the project is installed, with its venv in DIR/.venv
                    (default: the checkout this script is in: $APP_DIR)
  --dest DIR        where to write the unit files (default: /etc/systemd/system)
  --user NAME       the system user both services run as (default: mp-dashboard)
  --env-file PATH   the root-only secrets file (default: /etc/mp-dashboard/env)
  --no-user         do not create the system user
  --no-env-file     do not create the secrets file
  --credentials     also install drop-ins that pass the secrets file with LoadCredential=
                    instead of EnvironmentFile= (see systemd/README.md)
  -h, --help        this help
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
warn() { echo "install.sh: warning: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --app-dir) [ $# -ge 2 ] || die "$1 needs a value"; APP_DIR=$2; shift 2 ;;
        --app-dir=*) APP_DIR=${1#*=}; shift ;;
        --dest) [ $# -ge 2 ] || die "$1 needs a value"; DEST=$2; DEST_GIVEN=1; shift 2 ;;
        --dest=*) DEST=${1#*=}; DEST_GIVEN=1; shift ;;
        --user) [ $# -ge 2 ] || die "$1 needs a value"; SERVICE_USER=$2; shift 2 ;;
        --user=*) SERVICE_USER=${1#*=}; shift ;;
        --env-file) [ $# -ge 2 ] || die "$1 needs a value"; ENV_FILE=$2; shift 2 ;;
        --env-file=*) ENV_FILE=${1#*=}; shift ;;
        --no-user) CREATE_USER=0; shift ;;
        --no-env-file) CREATE_ENV=0; shift ;;
        --credentials) CREDENTIALS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

# --- checks -----------------------------------------------------------------------------------
[ -d "$APP_DIR" ] || die "no such directory: $APP_DIR"
APP_DIR=$(cd "$APP_DIR" && pwd -P)
# The paths go into unit files unquoted: no spaces, no '%' (a systemd specifier), no '@'.
for p in "$APP_DIR" "$ENV_FILE"; do
    case "$p" in
        /*) ;;
        *) die "not an absolute path: $p" ;;
    esac
    if printf '%s' "$p" | grep -q '[^A-Za-z0-9._/+-]'; then
        die "path with characters systemd would need escaped: '$p' (use letters, digits, . _ - + /)"
    fi
done
printf '%s' "$SERVICE_USER" | grep -Eq '^[a-z_][a-z0-9_-]{0,30}$' || die "bad user name: $SERVICE_USER"

# ProtectHome=yes hides /home, /root and /run/user from the services.
case "$APP_DIR/" in
    /home/*|/root/*|/run/user/*)
        die "$APP_DIR is under /home, /root or /run/user, which the hardened units cannot see (ProtectHome=yes). Install the project under /opt, e.g. /opt/mp-dashboard." ;;
esac
if [ -e "$APP_DIR/.venv/bin/python" ]; then
    PY_REAL=$(readlink -f "$APP_DIR/.venv/bin/python")
    case "$PY_REAL" in
        /home/*|/root/*|/run/user/*)
            warn "the venv's Python is $PY_REAL, hidden from the services by ProtectHome=yes; recreate the venv from a system Python: python3 -m venv $APP_DIR/.venv" ;;
    esac
else
    warn "no venv at $APP_DIR/.venv yet; create it: python3 -m venv $APP_DIR/.venv && $APP_DIR/.venv/bin/pip install $APP_DIR"
fi
for b in mp-collector datasette; do
    [ -x "$APP_DIR/.venv/bin/$b" ] || warn "$APP_DIR/.venv/bin/$b is missing (pip install $APP_DIR)"
done
[ -f "$APP_DIR/metadata.yml" ] || warn "$APP_DIR/metadata.yml is missing"

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# --- the system user --------------------------------------------------------------------------
if [ "$CREATE_USER" -eq 1 ]; then
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        echo "user $SERVICE_USER exists"
    else
        [ "$IS_ROOT" -eq 1 ] || die "creating the user $SERVICE_USER needs root (or pass --no-user)"
        NOLOGIN=/usr/sbin/nologin
        [ -x "$NOLOGIN" ] || NOLOGIN=/sbin/nologin
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell "$NOLOGIN" --comment "MP Dashboard" "$SERVICE_USER"
        echo "created system user $SERVICE_USER"
    fi
    # systemd would create it on the first start (StateDirectory=); create it now so that
    # aliases.csv can be put there before that.
    if [ "$IS_ROOT" -eq 1 ] && [ ! -d "$STATE_DIR" ]; then
        install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE_DIR"
        echo "created $STATE_DIR"
    fi
fi

# --- the secrets file -------------------------------------------------------------------------
if [ "$CREATE_ENV" -eq 1 ]; then
    if [ -e "$ENV_FILE" ]; then
        echo "$ENV_FILE exists, left as it is"
    else
        ENV_DIR=$(dirname "$ENV_FILE")
        if [ ! -d "$ENV_DIR" ]; then
            mkdir -p "$ENV_DIR"
            chmod 0700 "$ENV_DIR"
        fi
        # umask first: the file is never readable by others, not even for a moment.
        # DATABASE_PATH and ALIASES_FILE are set by the units; a value here would win over them
        # (EnvironmentFile= overrides Environment=), so they are commented out.
        (
            umask 077
            if [ -f "$APP_DIR/.env.example" ]; then
                sed -E 's/^(DATABASE_PATH|ALIASES_FILE)=/# set by the systemd units, leave it commented out: \1=/' \
                    "$APP_DIR/.env.example" > "$ENV_FILE"
            else
                printf '%s\n' "# MP Dashboard secrets, see $APP_DIR/.env.example and systemd/README.md" > "$ENV_FILE"
            fi
        )
        chmod 0600 "$ENV_FILE"
        if [ "$IS_ROOT" -eq 1 ]; then
            chown root:root "$ENV_FILE"
        fi
        echo "created $ENV_FILE (mode 0600) from .env.example: put the tokens in it"
    fi
fi

# --- the units --------------------------------------------------------------------------------
mkdir -p "$DEST"
render() {  # render TEMPLATE OUTPUT
    sed -e "s|@APP_DIR@|$APP_DIR|g" \
        -e "s|@USER@|$SERVICE_USER|g" \
        -e "s|@ENV_FILE@|$ENV_FILE|g" \
        -e "s|@STATE_DIR@|$STATE_DIR|g" \
        "$1" > "$2.tmp"
    if grep -q '@[A-Z_]*@' "$2.tmp"; then
        rm -f "$2.tmp"
        die "unreplaced placeholder in $2"
    fi
    chmod 0644 "$2.tmp"
    mv -f "$2.tmp" "$2"
    echo "wrote $2"
}
render "$SCRIPT_DIR/mp-collector.service.in" "$DEST/mp-collector.service"
render "$SCRIPT_DIR/mp-datasette.service.in" "$DEST/mp-datasette.service"
render "$SCRIPT_DIR/mp-collector.timer" "$DEST/mp-collector.timer"

if [ "$CREDENTIALS" -eq 1 ]; then
    for unit in mp-collector mp-datasette; do
        mkdir -p "$DEST/$unit.service.d"
        render "$SCRIPT_DIR/$unit-credentials.conf.in" "$DEST/$unit.service.d/50-credentials.conf"
    done
fi

# --- next steps -------------------------------------------------------------------------------
if [ "$DEST_GIVEN" -eq 0 ] && [ "$IS_ROOT" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "systemctl daemon-reload: done"
    RELOAD=""
else
    RELOAD="  systemctl daemon-reload
"
fi
cat <<EOF

Next:
  1. put the tokens in $ENV_FILE (and DATASETTE_PASSWORD_HASH, DATASETTE_SECRET: systemd/README.md)
  2. optionally copy the SKU aliases: install -o $SERVICE_USER -g $SERVICE_USER -m 0640 aliases.csv $STATE_DIR/
  3. enable and start:
$RELOAD  systemctl enable --now mp-collector.timer mp-datasette.service
  4. check:
  systemctl start mp-collector.service && journalctl -u mp-collector.service -n 50
  systemctl list-timers mp-collector.timer
  curl -sI http://127.0.0.1:8001/
EOF

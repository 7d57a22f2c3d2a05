#!/usr/bin/env bash
# Debian 12 packages dsen2 needs from the system: GDAL's Python bindings (what QGIS uses too)
# and venv support, plus QGIS 3.22 (python3-qgis, qgis-providers) for the QGIS plugin tests.
# Installs only what is missing; uses sudo when not root.
set -euo pipefail
packages=(python3-gdal gdal-bin python3-venv python3-pip python3-qgis qgis-providers)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

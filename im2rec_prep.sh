#!/usr/bin/env bash
# Turn a folder of class sub-folders of images into RecordIO files, with the im2rec.py that ships
# inside the mxnet package:
#   PREFIX_train.lst/.rec/.idx, PREFIX_val.lst/.rec/.idx and PREFIX_classes.txt ("label name" lines).
# Usage: im2rec_prep.sh ROOT PREFIX [--resize N] [--quality Q] [--train-ratio R] [--num-thread T]
set -euo pipefail

usage() { echo "usage: $0 ROOT PREFIX [--resize N] [--quality Q] [--train-ratio R] [--num-thread T]" >&2; exit 2; }
fail() { echo "im2rec_prep.sh: error: $*" >&2; exit 2; }

[ $# -ge 2 ] || usage
root=$1 prefix=$2
shift 2
resize=0 quality=95 train_ratio=0.9 num_thread=2
while [ $# -gt 0 ]; do
  case "$1" in
    --resize) resize=${2:?--resize needs a value}; shift 2 ;;
    --quality) quality=${2:?--quality needs a value}; shift 2 ;;
    --train-ratio) train_ratio=${2:?--train-ratio needs a value}; shift 2 ;;
    --num-thread) num_thread=${2:?--num-thread needs a value}; shift 2 ;;
    *) fail "unknown option $1 (see the usage line at the top of this script)" ;;
  esac
done

[ -d "$root" ] || fail "image folder $root does not exist; give a folder with one sub-folder of images per class"
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python=$here/.venv/bin/python; else python=python3; fi
fi
im2rec=$("$python" -W ignore -c 'import os, mxnet; print(os.path.join(os.path.dirname(mxnet.__file__), "tools", "im2rec.py"))' 2>/dev/null) \
  || fail "cannot import mxnet with $python; run 'make setup' or set PYTHON"
[ -f "$im2rec" ] || fail "$im2rec is missing from the mxnet package"
mkdir -p "$(dirname "$prefix")"

# Lists: labels follow the sorted class-folder names; im2rec prints "folder label" for each class.
"$python" -W ignore "$im2rec" --list --recursive --train-ratio "$train_ratio" "$prefix" "$root" \
  > "$prefix.classes.tmp"
awk '{label=$NF; $NF=""; sub(/ $/, ""); print label, $0}' "$prefix.classes.tmp" > "${prefix}_classes.txt"
rm -f "$prefix.classes.tmp"
# With --train-ratio 1 im2rec writes PREFIX.lst: it is the training list.
[ -f "$prefix.lst" ] && mv "$prefix.lst" "${prefix}_train.lst"
[ -s "${prefix}_classes.txt" ] || fail "no class sub-folders with images found under $root"

for split in train val; do
  lst=${prefix}_${split}.lst
  [ -s "$lst" ] || { rm -f "$lst"; continue; }
  "$python" -W ignore "$im2rec" --resize "$resize" --quality "$quality" --num-thread "$num_thread" \
    "$lst" "$root" >&2  # im2rec prints "time: ... count: N" every 1000 images
  echo "$lst -> ${prefix}_${split}.rec ($(wc -l < "$lst") images)"
done
echo "classes: ${prefix}_classes.txt ($(wc -l < "${prefix}_classes.txt") classes)"

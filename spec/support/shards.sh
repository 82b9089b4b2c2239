#!/usr/bin/env bash
# `make test` on every core: the spec files dealt to SHARDS busted processes
# run side by side (largest file first, each to the shard with the fewest
# bytes of spec so far: file size follows run time closely enough), each
# shard's output printed whole in turn, then one summary line in busted's
# own form with the counts summed and the wall time — the line .ci/run
# counts. Fails when a shard fails or prints no summary.
#
#   SHARDS=2 spec/support/shards.sh BUSTED-COMMAND...   (no spec files)
set -u
shards=${SHARDS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -a load files
for ((k = 0; k < shards; k++)); do load[k]=0; files[k]=""; done
while read -r size f; do
  k=0
  for ((j = 1; j < shards; j++)); do ((load[j] < load[k])) && k=$j; done
  load[k]=$((load[k] + size))
  files[k]="${files[k]} $f"
done < <(stat -c '%s %n' spec/*_spec.lua | sort -rn)

start=$(date +%s.%N)
declare -a pids
for ((k = 0; k < shards; k++)); do
  # shellcheck disable=SC2086  # the file list splits on purpose
  "$@" ${files[k]} > "$tmp/$k.log" 2>&1 &
  pids[k]=$!
done
status=0
for ((k = 0; k < shards; k++)); do wait "${pids[k]}" || status=1; done
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

s=0; f=0; e=0; p=0
for ((k = 0; k < shards; k++)); do
  echo "== shard $((k + 1)) of $shards:${files[k]}"
  cat "$tmp/$k.log"
  line=$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$tmp/$k.log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "shard $((k + 1)) printed no summary (it crashed?)"
    status=1; e=$((e + 1)); continue
  fi
  read -r ks kf ke kp < <(grep -oE '[0-9]+ (successes?|failures?|errors?|pending)' <<<"$line" | cut -d' ' -f1 | tr '\n' ' ')
  s=$((s + ks)); f=$((f + kf)); e=$((e + ke)); p=$((p + kp))
done
echo
echo "$s successes / $f failures / $e errors / $p pending : $wall seconds"
[ $((f + e)) -eq 0 ] || status=1
exit $status

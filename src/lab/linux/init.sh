#!/bin/busybox sh
# /init of the lab's Linux guest (busybox-static + Debian's stress-ng). Runs the workload plan given
# on the kernel command line in windows, and reports the work of each window on the serial console:
#   vmw.ws=<MiB>              memory the workload rewrites
#   vmw.plan=<MB/s>:<s>,...   steps of the plan: write rate (0 = idle) and duration (0 = for ever)
#   vmw.repeat=1              start the plan again after its last step (bursty guests)
#   vmw.win=<s>               window length (one stress-ng run, one report line)
# Line per window: "VMWORK seq=N t=<uptime cs> dt=<window cs> step=I target=<MB/s> mbs=<MB/s> mb=<MB>"
# where mbs is stress-ng's own write rate (mean over its write methods) and mb = mbs * dt: the work.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
exec </dev/console >/dev/console 2>&1
ws=64 plan=0:0 repeat=0 win=2
for a in $(cat /proc/cmdline); do
  case "$a" in
    vmw.ws=*) ws=${a#vmw.ws=} ;;
    vmw.plan=*) plan=${a#vmw.plan=} ;;
    vmw.repeat=*) repeat=${a#vmw.repeat=} ;;
    vmw.win=*) win=${a#vmw.win=} ;;
  esac
done
cs() { read -r up _ </proc/uptime; echo "${up%%.*}${up##*.}"; }
echo "VMREADY ws=$ws plan=$plan repeat=$repeat win=$win t=$(cs)"
seq=0
while :; do
  step=0
  for s in $(echo "$plan" | tr ',' ' '); do
    rate=${s%%:*} secs=${s##*:}
    t0=$(cs)
    while [ "$secs" = 0 ] || [ $(( $(cs) - t0 )) -lt $(( secs * 100 )) ]; do
      w0=$(cs)
      if [ "$rate" = 0 ]; then
        sleep "$win"
        mbs=0
      else
        stress-ng --memrate 1 --memrate-bytes "${ws}M" --memrate-wr-mbs "$rate" --memrate-rd-mbs 1000000 \
          -t "$win" --metrics >/tmp/out 2>&1
        mbs=$(awk '/ write[0-9a-z]* MB per sec/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^write/) { s += $i; n++ } } END { printf "%.1f", n ? s / n : 0 }' /tmp/out)
        # a run that wrote nothing says why, once
        [ "$mbs" = 0.0 ] && [ -z "$told" ] && { told=1; sed 's/^/VMLOG /' /tmp/out; }
      fi
      w1=$(cs)
      seq=$((seq + 1))
      echo "VMWORK seq=$seq t=$w1 dt=$((w1 - w0)) step=$step target=$rate mbs=$mbs mb=$(awk "BEGIN { printf \"%.1f\", $mbs * ($w1 - $w0) / 100 }")"
    done
    step=$((step + 1))
  done
  [ "$repeat" = 1 ] || { echo "VMDONE t=$(cs)"; exec sleep 2147483647; }
done

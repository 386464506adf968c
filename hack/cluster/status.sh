#!/usr/bin/env bash
# Shows each test-cluster component: PID, health, resident memory; and the total RSS.
# Exits non-zero unless every component is running and healthy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
total=0 bad=0
printf '%-24s %8s %-8s %10s\n' COMPONENT PID STATE RSS_MIB
for c in "${COMPONENTS[@]}"; do
  pid=- state=stopped rss=0
  if alive "$c"; then
    pid=$(pid_of "$c")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    if healthy "$c"; then state=healthy; else state=unhealthy; bad=1; fi
  else
    bad=1
  fi
  total=$((total + rss))
  printf '%-24s %8s %-8s %10d\n' "$c" "$pid" "$state" $((rss / 1024))
done
printf '%-24s %8s %-8s %10d\n' total "" "" $((total / 1024))
exit $bad

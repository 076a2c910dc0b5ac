# Dateline: one image for every service (`dateline api | projector | gateway | serve`).
# See README.md and docs/operations.md. Every dependency installs from a prebuilt wheel, so no
# build tools are needed; the services run as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY events ./events
COPY projections ./projections
COPY services ./services
# Install, drop the sources, then prove the installed package carries its Lua scripts
# (package data): without them every store call would fail at start-up.
RUN pip install . \
    && cd / && rm -rf /src \
    && python -c "from importlib.resources import files; \
[files('services.store.scripts').joinpath(n).read_text() for n in ('append.lua', 'project.lua', 'create_token.lua')]" \
    && useradd --system --uid 10001 --create-home --home-dir /home/dateline dateline \
    && mkdir /data && chown dateline:dateline /data

USER dateline
WORKDIR /home/dateline
# Used only by `dateline serve` without --redis: where the embedded Valkey keeps its data.
ENV DATELINE_DATA_DIR=/data

EXPOSE 8000 8001
ENTRYPOINT ["dateline"]
CMD ["serve", "--host", "0.0.0.0"]

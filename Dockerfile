# The project with its CLI, CPU-only. The steps mirror the Makefile's .venv target: Python 3.11,
# pip upgraded, torch 2.13.0 first and pinned (the CPU wheel), then the project with its test
# extra. `periodize` is the entrypoint:
#   docker build -t periodize .
#   docker run --rm periodize plan --model models/shipped --data data/real/whoop/u01
#   docker run --rm -v "$PWD/out:/out" periodize daily --model models/shipped \
#       --data data/real/whoop/u01 --db /out/daily.db
# The tests run inside it with: docker run --rm --entrypoint python periodize -m pytest -q -m "not slow"
FROM python:3.11-slim
# the CPU wheel's index (a plain `pip install torch` on Linux pulls the multi-GB CUDA build)
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg
WORKDIR /app
RUN python -m pip install --quiet --upgrade pip \
 && python -m pip install --quiet torch==2.13.0 --index-url "$TORCH_INDEX"
# dependencies before the sources, so that editing code does not reinstall them
COPY pyproject.toml README.md ./
COPY physiology_model/__init__.py physiology_model/__init__.py
COPY simulator/__init__.py simulator/__init__.py
COPY agents/__init__.py agents/__init__.py
COPY analysis/__init__.py analysis/__init__.py
RUN python -m pip install --quiet -e '.[test]'
COPY . .
RUN useradd --create-home athlete && chown -R athlete /app
USER athlete
ENTRYPOINT ["periodize"]
CMD ["--help"]

# The two commands of the README. Each creates .venv with everything the project needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU wheel on this project's machines.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The whole pipeline on the shipped data with a small budget (about 10 minutes on 2 cores):
# table → shipped world model → cohorts → short SAC (its default recipe, with a student of 16
# athletes and one round) and PPO runs → every policy evaluated, the shipped SAC beside them, with
# mpc_tested (the planner handed a monthly performance test, taken as that day's session) →
# report → 7-day plans for one shipped athlete (MPC, with its page, the PPO policy and the
# shipped SAC of models/agents) → two mornings of the daily loop and its report. Outputs under
# build/demo, rebuilt from scratch each time.
DEMO := build/demo
demo: $(STAMP)
	rm -rf $(DEMO)
	@mkdir -p $(DEMO)
	$(VENV)/bin/periodize data build data/real --out $(DEMO)/table.parquet
	$(VENV)/bin/periodize cohort --model models/shipped --n 512 --seed 1 --out $(DEMO)/train_cohort.npz
	$(VENV)/bin/periodize cohort --model models/shipped --n 64 --seed 1000 --out $(DEMO)/test_cohort.npz
	$(VENV)/bin/periodize train --agent sac --cohort $(DEMO)/train_cohort.npz --steps 23040 --n-envs 256 --seed 0 --device auto --student-athletes 16 --agent-config '{"student": {"rounds": 1}}' --out $(DEMO)/runs/sac-small
	$(VENV)/bin/periodize train --agent ppo --cohort $(DEMO)/train_cohort.npz --steps 230400 --n-envs 256 --seed 0 --device auto --out $(DEMO)/runs/ppo
	$(VENV)/bin/periodize evaluate --model models/shipped --cohort $(DEMO)/test_cohort.npz --runs models/agents/sac $(DEMO)/runs/sac-small $(DEMO)/runs/ppo --data data/real --tests-every 28 --test-session tempo_threshold --out $(DEMO)/evaluation
	$(VENV)/bin/periodize plan --model models/shipped --data data/real/whoop/u01 --html $(DEMO)/plan.html
	$(VENV)/bin/periodize plan --model models/shipped --data data/real/whoop/u01 --policy $(DEMO)/runs/ppo
	$(VENV)/bin/periodize plan --model models/shipped --data data/real/whoop/u01 --policy models/agents/sac
	$(VENV)/bin/periodize daily --model models/shipped --data data/real/whoop/u01 --db $(DEMO)/daily.db --date 2022-11-09
	$(VENV)/bin/periodize daily --model models/shipped --data data/real/whoop/u01 --db $(DEMO)/daily.db --date 2022-11-10
	$(VENV)/bin/periodize daily --db $(DEMO)/daily.db --report --html $(DEMO)/daily.html
	@echo "report: $(DEMO)/evaluation/report.html; plan page: $(DEMO)/plan.html; daily log: $(DEMO)/daily.html"

# Full-budget versions of the benchmarks and of the evaluation (hours on 2 cores).
benchmark: $(STAMP)
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/safety_check.py
	$(PY) benchmarks/online_features_speed.py
	$(PY) benchmarks/fit_benchmark.py
	$(PY) benchmarks/sac_throughput.py
	$(PY) benchmarks/mpc_latency.py
	$(PY) benchmarks/full_evaluation.py

test: $(STAMP)
	# the layering of DESIGN §2 (contracts in pyproject.toml), then the tests
	$(VENV)/bin/lint-imports
	# one worker per core (at most 4), each test file on one worker (its module fixtures built
	# once): pytest-xdist, in the test extra
	$(PY) -m pytest -q -m "not slow" -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache build

test-all: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

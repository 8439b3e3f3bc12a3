# CPU image: the same set-up as on a bare machine (scripts/run.sh builds the environment once, at build time).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/seal-lightning
COPY . .
ENV SEAL_VENV=/opt/venv
RUN bash scripts/run.sh python -c "import seal_lightning"
ENTRYPOINT ["bash", "scripts/run.sh", "python", "-m", "seal_lightning"]
CMD ["fit", "--config", "conf/demo.yaml"]

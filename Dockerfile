# The NCII monitor as a container: `docker compose up` runs it with PostgreSQL.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hashes ./hashes
COPY monitor ./monitor
COPY connectors ./connectors
RUN pip install . && useradd --create-home --uid 10001 ncii
USER ncii
ENV NCII_DATA_DIR=/data
ENTRYPOINT ["ncii"]

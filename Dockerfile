# The NCII monitor as a container: `docker compose up` runs it with PostgreSQL.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hashes ./hashes
COPY monitor ./monitor
COPY connectors ./connectors
# Compile the numba kernels once at build time into a cache every container can read (otherwise
# each new container spends ~10 s compiling on its first hash or query).
ENV NUMBA_CACHE_DIR=/opt/numba-cache
RUN pip install . && useradd --create-home --uid 10001 ncii \
 && python -c "import numpy as n, hashes.pdq as p, hashes.index as i, hashes._region_kernels as r; p.pdq_from_rgb(n.zeros((64,64,3),n.uint8)); i.MultiIndexHashIndex.from_arrays([1],[bytes(32)]).search(bytes(32)); r.warm()" \
 && chmod -R a+rX /opt/numba-cache
USER ncii
ENV NCII_DATA_DIR=/data
EXPOSE 8000
ENTRYPOINT ["ncii"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

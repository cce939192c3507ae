# One image for the BFF, the migrator and the department simulators.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY core core
COPY bff bff
COPY identity identity
COPY codes codes
COPY services services
COPY bench bench
COPY migrations migrations
RUN pip install --no-cache-dir --no-deps -e .
USER nobody
EXPOSE 8000
CMD ["onecity", "serve", "--host", "0.0.0.0", "--port", "8000"]

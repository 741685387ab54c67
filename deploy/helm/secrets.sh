#!/bin/sh
# The two Secrets deploy/helm/values.yaml and workers.yaml read, made from your shell's
# environment (the same variables as .env), so no password is ever written into a file:
#
#   set -a; . ./.env; set +a; sh deploy/helm/secrets.sh --namespace dagster
#
# penguin-pipeline-secrets: the Celery broker and result backend, the lake's catalog (libpq words
# with its password: ducklake:postgres:dbname=penguin_pipeline_lake host=... user=... password=...)
# and the S3 credentials (AWS_ENDPOINT_URL only when set: unset on AWS's own S3).
# penguin-postgresql: the instance's Postgres password, under the key the chart reads.
# Arguments go to kubectl (--namespace, --context, --dry-run=client -o yaml to look first).
set -eu

kubectl create secret generic penguin-pipeline-secrets "$@" \
  --from-literal=PENGUIN_CELERY_BROKER="$PENGUIN_CELERY_BROKER" \
  --from-literal=PENGUIN_CELERY_BACKEND="$PENGUIN_CELERY_BACKEND" \
  --from-literal=PENGUIN_WAREHOUSE="$PENGUIN_WAREHOUSE" \
  ${AWS_ENDPOINT_URL:+"--from-literal=AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"} \
  --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  --from-literal=AWS_DEFAULT_REGION="$AWS_DEFAULT_REGION"

kubectl create secret generic penguin-postgresql "$@" \
  --from-literal=postgresql-password="$DAGSTER_PG_PASSWORD"

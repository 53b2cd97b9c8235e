# The handler as a container image, for hostingPlan=ContainerAppsJob (and any container platform). It is
# built without a local Docker engine by `az acr build` (scripts/deploy-job.sh), or with `docker build .`.
# The image runs the built-in handler; the job passes the mode (`run-once`) as its argument.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o /out/handler ./handler

# distroless/static: CA certificates and a nonroot user, no shell; the handler is a static binary.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/handler /handler
USER nonroot:nonroot
ENTRYPOINT ["/handler"]
CMD ["worker"]

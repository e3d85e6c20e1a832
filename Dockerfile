# One image for the controller and (as they land) the built-in checks: a static binary on an
# empty base, running as a non-root user, with no shell.
#
#   docker build -t <registry>/kuberhealthy:0.1.0 .
#   (or: podman build / buildah bud)

FROM docker.io/library/rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin kuberhealthy

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/kuberhealthy /kuberhealthy
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/kuberhealthy"]
CMD ["run"]

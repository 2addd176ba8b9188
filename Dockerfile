# The operator's image: built in a Rust image, shipped as one static binary on distroless, as a
# non-root user with nothing else inside.
#   docker build -t bitbucket-operator .
FROM rust:1.89-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools cmake clang && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
COPY crds ./crds
COPY benches ./benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin bitbucket-operator \
 && cp target/x86_64-unknown-linux-musl/release/bitbucket-operator /bitbucket-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /bitbucket-operator /usr/local/bin/bitbucket-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/bitbucket-operator"]
CMD ["run"]

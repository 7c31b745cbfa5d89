# healthprobe's container image: the agent alone on an empty (scratch) base,
# running as the non-root user 65532.
#
#   docker build -t ghcr.io/healthprobe/healthprobe:0.1.0 .
#
# Stage 1 compiles (or, for tests/docker/run, takes a prebuilt binary from the
# build context) and lays out the runtime filesystem with
# tests/docker/collect-rootfs.sh: the binary, the shared libraries ldd lists,
# /etc/passwd with user 65532, the CA bundle. Stage 2 is that filesystem and
# nothing else: no shell, no package manager.
#
# BUILD_IMAGE: any image with cargo (the official Rust image by default), or,
# with a prebuilt target/release/healthprobe in the context, any image with a
# POSIX shell (tests/docker/run imports one, as there is no registry there).
# The runtime libc is the build image's: build on the distribution whose glibc
# you want to ship (bookworm here).
ARG BUILD_IMAGE=rust:1-bookworm

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
RUN if [ -x target/release/healthprobe ]; then \
        echo "using the prebuilt target/release/healthprobe from the build context"; \
    else \
        cargo build --release --locked --bin healthprobe; \
    fi \
 && sh tests/docker/collect-rootfs.sh target/release/healthprobe /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 9464
ENTRYPOINT ["/healthprobe"]
CMD ["run", "--listen", "0.0.0.0:9464"]

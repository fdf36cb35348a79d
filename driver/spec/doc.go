// Package spec describes the NVM Express Base Specification (2.0) and NVM Command Set
// Specification structures that nvmeperf needs: controller registers, submission and
// completion queue entries, opcodes, status codes and the Identify and log page data.
//
// It only describes the spec: no I/O, no state. Every multi-byte field is
// little-endian by spec, which is also the byte order of every platform nvmeperf builds
// for (amd64, arm64); the compile-time checks in this package pin each structure's size
// so that a field added in the wrong place fails the build.
package spec

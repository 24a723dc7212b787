#ifndef HRTEM_CCRYPTO_SHIM_H
#define HRTEM_CCRYPTO_SHIM_H
// OpenSSL's SHA-256 uses the CPU's SHA extensions where present (GB/s, not hundreds of MB/s).
#include <openssl/evp.h>
#endif

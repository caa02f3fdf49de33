// SPDX-License-Identifier: Apache-2.0
// libcrypto for Swift. Only the OpenSSL 3 API; deprecated names stay hidden.
#ifndef CGATEHOUSE_OPENSSL_SHIM_H
#define CGATEHOUSE_OPENSSL_SHIM_H

#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

// OPENSSL_free is a macro (it passes __FILE__/__LINE__), invisible to Swift.
static inline void CGatehouseOpenSSL_free(void *pointer) {
    OPENSSL_free(pointer);
}

// EVP_PKEY_KEYPAIR and EVP_PKEY_PUBLIC_KEY are composite macros Swift does not import.
static inline int CGatehouseOpenSSL_keypair_selection(void) {
    return EVP_PKEY_KEYPAIR;
}

static inline int CGatehouseOpenSSL_public_key_selection(void) {
    return EVP_PKEY_PUBLIC_KEY;
}

// OSSL_PARAM keeps its key pointer: it must be the header's static literal, not a temporary
// C string that Swift bridges from the imported macro and frees after the call.
static inline OSSL_PARAM CGatehouseOpenSSL_mac_digest_parameter(char *digest) {
    return OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
}

// HKDF-SHA256 (RFC 5869) through EVP_KDF. In C because each OSSL_PARAM keeps its key pointer,
// which must be the header's static literal (see above). Returns 1 on success.
static inline int CGatehouseOpenSSL_hkdf_sha256(
    const unsigned char *ikm, size_t ikm_length, const unsigned char *salt, size_t salt_length,
    const unsigned char *info, size_t info_length, unsigned char *output, size_t output_length) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL) return 0;
    EVP_KDF_CTX *context = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (context == NULL) return 0;
    OSSL_PARAM parameters[5];
    int count = 0;
    parameters[count++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    parameters[count++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_length);
    if (salt_length > 0) parameters[count++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_length);
    parameters[count++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_length);
    parameters[count] = OSSL_PARAM_construct_end();
    int status = EVP_KDF_derive(context, output, output_length, parameters);
    EVP_KDF_CTX_free(context);
    return status;
}

#endif

// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL
import Synchronization

/// How a signature is made with an asymmetric key.
public enum SignatureScheme: Sendable, Hashable {
    /// RSASSA-PKCS1-v1_5.
    case rsaPKCS1(Digest)
    /// RSASSA-PSS with MGF1 over the same digest and a salt as long as the digest (RFC 7518 §3.5).
    case rsaPSS(Digest)
    /// ECDSA with signatures in JOSE's raw r‖s form.
    case ecdsa(Digest)
    /// Ed25519 (pure EdDSA, no pre-hash).
    case ed25519

    var digest: Digest? {
        switch self {
        case .rsaPKCS1(let digest), .rsaPSS(let digest), .ecdsa(let digest): digest
        case .ed25519: nil
        }
    }

    /// Whether `key` is of the kind this scheme needs.
    public func fits(_ key: EVPKey) -> Bool {
        switch (self, key.kind) {
        case (.rsaPKCS1, .rsa), (.rsaPSS, .rsa), (.ed25519, .ed25519): true
        case (.ecdsa(let digest), .ec(let curve)):
            // JOSE binds each curve to one digest (RFC 7518 §3.4).
            switch curve {
            case .p256: digest == .sha256
            case .p384: digest == .sha384
            case .p521: digest == .sha512
            }
        default: false
        }
    }
}

extension EVPKey {
    /// Signs `message`; ECDSA signatures come back as raw r‖s.
    public func sign(_ message: some RawBytes, scheme: SignatureScheme) throws(OpenSSLError) -> [UInt8] {
        guard self.isPrivate, scheme.fits(self) else {
            throw OpenSSLError(operation: "signing needs a private key of the scheme's kind", details: [])
        }
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLError.drain("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer? = nil
        try check(EVP_DigestSignInit(context, &keyContext, scheme.digest?.md, nil, self.pointer), "EVP_DigestSignInit")
        if case .rsaPSS = scheme { try configurePSS(keyContext) }
        return try digestSign(context, key: self, message)
    }
}

/// One signature with a context initialised for `key`, raw r‖s for ECDSA (as JWS wants it).
private func digestSign(_ context: OpaquePointer, key: EVPKey, _ message: some RawBytes) throws(OpenSSLError) -> [UInt8] {
    let capacity = Int(EVP_PKEY_get_size(key.pointer))
    let signature = message.withUnsafeBytes { input -> [UInt8]? in
        var output = [UInt8](repeating: 0, count: capacity)
        var length = capacity
        guard EVP_DigestSign(context, &output, &length, input.baseAddress, input.count) == 1 else { return nil }
        output.removeLast(capacity - length)
        return output
    }
    guard let signature else { throw OpenSSLError.drain("EVP_DigestSign") }
    if case .ec(let curve) = key.kind { return try ECDSASignature.rawFromDER(signature, curve: curve) }
    return signature
}

private func configurePSS(_ keyContext: OpaquePointer?) throws(OpenSSLError) {
    try check(EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING), "set PSS padding")
    try check(EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST), "set PSS salt length")
}

/// A public key made ready to verify one signature scheme, as fast as libcrypto allows: each thread
/// initialises its context once and copies it per call.
public final class PreparedVerifier: Sendable {
    /// The key.
    public let key: EVPKey
    /// The scheme.
    public let scheme: SignatureScheme
    /// Distinguishes this verifier's contexts in each thread's cache.
    private let identifier: UInt64

    /// Fails when the key does not fit the scheme.
    public init(key: EVPKey, scheme: SignatureScheme) throws(OpenSSLError) {
        guard scheme.fits(key) else {
            throw OpenSSLError(operation: "a \(key.kind) key cannot verify \(scheme)", details: [])
        }
        self.key = key
        self.scheme = scheme
        self.identifier = nextContextIdentifier.add(1, ordering: .relaxed).newValue
    }

    /// Whether `signature` (raw r‖s for ECDSA) is valid for `message`.
    public func verify(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        if case .ec(let curve) = self.key.kind {
            // DER of two integers of at most 67 bytes each, plus headers: 145 bytes for P-521.
            return withUnsafeTemporaryAllocation(byteCount: 160, alignment: 1) { der in
                guard let length = ECDSASignature.derFromRaw(signature, curve: curve, into: der) else { return false }
                return self.verifyEncoded(UnsafeRawBufferPointer(rebasing: der[0..<length]), message: message)
            }
        }
        return self.verifyEncoded(signature, message: message)
    }

    /// Verifies with a signature already in libcrypto's encoding.
    private func verifyEncoded(_ signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        let contexts = ThreadLocalContexts.current
        guard let template = contexts.template(self.identifier, make: self.makeTemplate) else {
            OpenSSLError.clearQueue()
            return false
        }
        let scratch = contexts.scratch
        guard EVP_MD_CTX_copy_ex(scratch, template) == 1 else {
            OpenSSLError.clearQueue()
            return false
        }
        let status = EVP_DigestVerify(
            scratch, signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count
        )
        if status != 1 { OpenSSLError.clearQueue() }
        return status == 1
    }

    /// A context initialised for this key and scheme, never used for an operation itself.
    private func makeTemplate() -> OpaquePointer? {
        templateContext(scheme: self.scheme) { EVP_DigestVerifyInit($0, $1, self.scheme.digest?.md, nil, self.key.pointer) }
    }
}

/// A private key made ready to sign with one scheme: as for verification, each thread initialises
/// a context once and copies it per signature. `EVP_DigestSignInit` fetches the algorithm and the
/// digest from the provider every time, which cost as much as the ES256 signature itself.
public final class PreparedSigner: Sendable {
    public let key: EVPKey
    public let scheme: SignatureScheme
    private let identifier: UInt64

    /// Fails when the key is public only or does not fit the scheme.
    public init(key: EVPKey, scheme: SignatureScheme) throws(OpenSSLError) {
        guard key.isPrivate, scheme.fits(key) else {
            throw OpenSSLError(operation: "signing needs a private key of the scheme's kind", details: [])
        }
        self.key = key
        self.scheme = scheme
        self.identifier = nextContextIdentifier.add(1, ordering: .relaxed).newValue
    }

    /// The signature of `message` (raw r‖s for ECDSA, as JWS wants it).
    public func sign(_ message: some RawBytes) throws(OpenSSLError) -> [UInt8] {
        let contexts = ThreadLocalContexts.current
        guard let template = contexts.template(self.identifier, make: self.makeTemplate) else {
            throw OpenSSLError.drain("EVP_DigestSignInit")
        }
        let scratch = contexts.scratch
        try check(EVP_MD_CTX_copy_ex(scratch, template), "EVP_MD_CTX_copy_ex")
        return try digestSign(scratch, key: self.key, message)
    }

    /// A context initialised for this key and scheme, never used for a signature itself.
    private func makeTemplate() -> OpaquePointer? {
        templateContext(scheme: self.scheme) { EVP_DigestSignInit($0, $1, self.scheme.digest?.md, nil, self.key.pointer) }
    }
}

/// A new digest context set up by `initialise` (`EVP_DigestSignInit` or `EVP_DigestVerifyInit`,
/// handed the context and where to put its key context), with PSS padding for `scheme`; nil when
/// libcrypto refuses.
private func templateContext(scheme: SignatureScheme, _ initialise: (OpaquePointer, UnsafeMutablePointer<OpaquePointer?>) -> Int32) -> OpaquePointer? {
    guard let context = EVP_MD_CTX_new() else { return nil }
    var keyContext: OpaquePointer? = nil
    guard initialise(context, &keyContext) == 1 else {
        EVP_MD_CTX_free(context)
        return nil
    }
    if case .rsaPSS = scheme {
        do {
            try configurePSS(keyContext)
        } catch {
            EVP_MD_CTX_free(context)
            return nil
        }
    }
    return context
}

/// Source of `PreparedVerifier` / `PreparedSigner` / `PreparedMAC` identifiers; never reused within a process.
let nextContextIdentifier = Atomic<UInt64>(0)

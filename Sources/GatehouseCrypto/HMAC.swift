// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL
import Synchronization

/// An HMAC key made ready for one digest. Each thread keeps its own keyed `EVP_MAC_CTX` and
/// re-initialises it per call, which skips re-hashing the key.
public final class PreparedMAC: Sendable {
    /// The digest.
    public let digest: Digest
    private let secret: [UInt8]
    private let identifier: UInt64

    public init(secret: [UInt8], digest: Digest) {
        self.secret = secret
        self.digest = digest
        self.identifier = nextContextIdentifier.add(1, ordering: .relaxed).newValue
    }

    /// The tag of `message`, written to `output` (which must hold `digest.byteCount` bytes). False
    /// only if libcrypto fails.
    public func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        precondition(output.count >= self.digest.byteCount)
        let contexts = ThreadLocalContexts.current
        guard let context = contexts.mac(self.identifier, make: self.makeContext),
            // A NULL key re-initialises with the key already set.
            EVP_MAC_init(context, nil, 0, nil) == 1,
            EVP_MAC_update(context, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1
        else {
            OpenSSLError.clearQueue()
            return false
        }
        var length = 0
        let status = EVP_MAC_final(context, output.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, output.count)
        if status != 1 { OpenSSLError.clearQueue() }
        return status == 1 && length == self.digest.byteCount
    }

    /// The tag of `message`.
    public func authenticate(_ message: some RawBytes) -> [UInt8] {
        var tag = [UInt8](repeating: 0, count: self.digest.byteCount)
        let ok = message.withUnsafeBytes { input in
            tag.withUnsafeMutableBytes { self.authenticate(input, into: $0) }
        }
        precondition(ok, "HMAC failed")
        return tag
    }

    /// Whether `tag` is this key's tag for `message`, compared in constant time.
    public func verify(tag: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == self.digest.byteCount else { return false }
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { expected in
            guard self.authenticate(message, into: expected) else { return false }
            return constantTimeEquals(UnsafeRawBufferPointer(rebasing: expected[0..<tag.count]), tag)
        }
    }

    private func makeContext() -> OpaquePointer? {
        guard let mac = HMACAlgorithm.shared.mac, let context = EVP_MAC_CTX_new(mac) else { return nil }
        let initialised = self.digest.providerName.withCString { name in
            withUnsafeTemporaryAllocation(of: OSSL_PARAM.self, capacity: 2) { parameters in
                parameters[0] = CGatehouseOpenSSL_mac_digest_parameter(UnsafeMutablePointer(mutating: name))
                parameters[1] = OSSL_PARAM_construct_end()
                return self.secret.withUnsafeBufferPointer { key in
                    EVP_MAC_init(context, key.baseAddress, key.count, parameters.baseAddress) == 1
                }
            }
        }
        guard initialised else {
            EVP_MAC_CTX_free(context)
            return nil
        }
        return context
    }
}

/// The fetched HMAC implementation, shared read-only by all threads.
private final class HMACAlgorithm: @unchecked Sendable {
    static let shared = HMACAlgorithm()
    let mac: OpaquePointer?
    private init() { self.mac = EVP_MAC_fetch(nil, "HMAC", nil) }
}

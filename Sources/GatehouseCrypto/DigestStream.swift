// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// An incremental digest, for bodies that are streamed rather than held whole.
public final class DigestStream {
    private let context: OpaquePointer
    public let digest: Digest

    public init(_ digest: Digest) {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, digest.md, nil) == 1 else {
            fatalError("EVP_DigestInit_ex(\(digest.providerName)) failed")
        }
        self.context = context
        self.digest = digest
    }

    deinit {
        EVP_MD_CTX_free(self.context)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        let status = EVP_DigestUpdate(self.context, bytes.baseAddress, bytes.count)
        precondition(status == 1, "EVP_DigestUpdate failed")
    }

    /// Starts over, reusing the context (no allocation).
    public func reset() {
        let status = EVP_DigestInit_ex(self.context, self.digest.md, nil)
        precondition(status == 1, "EVP_DigestInit_ex failed")
    }

    /// Writes the digest of everything given so far into `output` (at least `digest.byteCount`
    /// bytes); `reset()` before using the stream again.
    public func finish(into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= self.digest.byteCount)
        var length: UInt32 = 0
        let status = EVP_DigestFinal_ex(self.context, output.baseAddress?.assumingMemoryBound(to: UInt8.self), &length)
        precondition(status == 1 && Int(length) == self.digest.byteCount, "EVP_DigestFinal_ex failed")
    }

    /// The digest of everything given so far; the stream is finished afterwards.
    public func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: self.digest.byteCount)
        var length: UInt32 = 0
        let status = EVP_DigestFinal_ex(self.context, &output, &length)
        precondition(status == 1 && Int(length) == self.digest.byteCount, "EVP_DigestFinal_ex failed")
        return output
    }
}

@available(*, unavailable)
extension DigestStream: Sendable {}

// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseOpenSSL

/// The SHA-2 digests JOSE uses.
public enum Digest: Sendable, Hashable, CaseIterable {
    case sha256, sha384, sha512

    /// Output size in bytes.
    public var byteCount: Int {
        switch self {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    /// The name libcrypto's providers know it by.
    var providerName: String {
        switch self {
        case .sha256: "SHA256"
        case .sha384: "SHA384"
        case .sha512: "SHA512"
        }
    }

    /// The fetched `EVP_MD`, once per process: an implicit fetch on every call would cost a lock.
    var md: OpaquePointer {
        switch self {
        case .sha256: FetchedDigests.shared.sha256
        case .sha384: FetchedDigests.shared.sha384
        case .sha512: FetchedDigests.shared.sha512
        }
    }

    /// One-shot hash of `bytes`.
    public func hash(_ bytes: some RawBytes) -> [UInt8] {
        bytes.withUnsafeBytes { input in
            var output = [UInt8](repeating: 0, count: self.byteCount)
            var length: UInt32 = 0
            let status = output.withUnsafeMutableBufferPointer { out in
                EVP_Digest(input.baseAddress, input.count, out.baseAddress, &length, self.md, nil)
            }
            // EVP_Digest fails only on allocation failure or a broken provider: not recoverable.
            precondition(status == 1 && Int(length) == self.byteCount, "EVP_Digest failed")
            return output
        }
    }
}

/// `EVP_MD` objects are immutable once fetched and may be shared across threads.
private final class FetchedDigests: @unchecked Sendable {
    static let shared = FetchedDigests()
    let sha256: OpaquePointer
    let sha384: OpaquePointer
    let sha512: OpaquePointer

    private init() {
        func fetch(_ name: String) -> OpaquePointer {
            guard let md = EVP_MD_fetch(nil, name, nil) else { fatalError("libcrypto has no \(name)") }
            return md
        }
        self.sha256 = fetch("SHA256")
        self.sha384 = fetch("SHA384")
        self.sha512 = fetch("SHA512")
    }
}

/// Byte buffers that expose their storage contiguously.
public protocol RawBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: RawBytes where Element == UInt8 {}
extension ArraySlice: RawBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: RawBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(self)
    }
}

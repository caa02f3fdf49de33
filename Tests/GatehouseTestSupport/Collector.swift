// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Values appended from several threads at once (results of concurrent requests).
public final class Collector<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var elements: [Element] = []

    public init() {}

    public func append(_ element: Element) { self.lock.withLock { self.elements.append(element) } }

    public var values: [Element] { self.lock.withLock { self.elements } }
}

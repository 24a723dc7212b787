import Dispatch

/// Runs `body(0)` ... `body(iterations - 1)` in parallel and returns when every one has
/// finished: `DispatchQueue.concurrentPerform` for a body that is not `@Sendable`, as a
/// parallel loop over pointers is not.
///
/// The caller's contract is that of a parallel loop in C: iterations write disjoint memory, or
/// guard what they share themselves (with `Locked`).
public func concurrentPerform(iterations: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        let shared = SharedLoopBody(body: body)
        DispatchQueue.concurrentPerform(iterations: iterations) { shared.body($0) }
    }
}

private struct SharedLoopBody: @unchecked Sendable {
    // Sendable by hand: `concurrentPerform` calls the body only until it returns (it waits for
    // every iteration), so nothing the body captures outlives the loop; what iterations share is
    // the caller's contract above.
    let body: (Int) -> Void
}

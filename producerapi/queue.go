package producerapi

// sampleQueue is the buffer's FIFO of samples, held in chunks of
// queueChunk. Appending never moves a sample already held and taking from
// the front gives whole chunks back, so the buffer's memory follows what
// it holds.
//
// It replaced one slice grown by append and consumed from the front: every
// growth copied all it held into new memory, and as the front was consumed
// the array never had room for long, so a producer with a period or two
// buffered copied its whole buffer again and again. At RFD 125's first
// period (ten producers of 220,000 series) those copies, and the kernel
// zeroing the fresh pages they landed on, took 44 % of the machine's CPU
// (perf, BENCHMARKS.md "the producers' buffer").
//
// Not safe for concurrent use: the Server's lock guards it.
type sampleQueue struct {
	// chunks[0][off:] are the oldest samples; every chunk but the last
	// is full (len queueChunk), each has cap queueChunk.
	chunks [][]bufSample
	off    int
	n      int
	// spare is one emptied chunk kept for the next push while the queue
	// holds anything, so a buffer drained as it fills allocates nothing;
	// an empty queue drops it.
	spare []bufSample
}

// queueChunk samples a chunk: ~220 KiB of bufSample, small against a
// period of a large producer's samples and large against the chunk list.
const queueChunk = 1024

func (q *sampleQueue) len() int { return q.n }

// at returns the i-th sample from the front (i < len).
func (q *sampleQueue) at(i int) *bufSample {
	i += q.off
	return &q.chunks[i/queueChunk][i%queueChunk]
}

func (q *sampleQueue) push(s bufSample) {
	last := len(q.chunks) - 1
	if last < 0 || len(q.chunks[last]) == queueChunk {
		c := q.spare
		q.spare = nil
		if c == nil {
			c = make([]bufSample, 0, queueChunk)
		}
		q.chunks = append(q.chunks, c)
		last++
	}
	q.chunks[last] = append(q.chunks[last], s)
	q.n++
}

// front returns the oldest sample (len > 0).
func (q *sampleQueue) front() *bufSample { return &q.chunks[0][q.off] }

// pop drops the oldest sample (len > 0), clearing its slot so the
// strings it referred to can be collected.
func (q *sampleQueue) pop() {
	q.chunks[0][q.off] = bufSample{}
	q.off++
	q.n--
	if q.off == len(q.chunks[0]) {
		// Empty: the chunk was full, or it is the last one.
		q.spare = q.chunks[0][:0]
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.off = 0
	}
	if q.n == 0 {
		// Nothing held: the chunk list and the spare go too (an idle
		// producer holds no sample memory).
		q.chunks, q.spare = nil, nil
	}
}

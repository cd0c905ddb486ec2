package bench

import (
	"fmt"

	pa "github.com/holdfast/holdfast/producerapi"
)

// sessionRecords writes version 3 page records as a collector writes them
// for a fleet served by producers of producerVMs VMs each: one series
// session per producer, each page defining only the series its session has
// not defined yet. The bench's fleet is appended in a fixed order, so page i
// of every period holds the same series and belongs to producer
// (i mod pagesPerPeriod) / pagesPerProducer.
type sessionRecords struct {
	pagesPerPeriod, pagesPerProducer int
	sessions                         map[int]*pa.SessionEncoder
	block                            []byte
}

// producerVMs is the size of one bench producer, as in RFD 125's fleet of
// 10,000-VM producers.
const producerVMs = 10_000

func newSessionRecords(vms, samplesPerVM, pageSamples int) *sessionRecords {
	period := vms * samplesPerVM
	perProducer := min(vms, producerVMs) * samplesPerVM
	return &sessionRecords{
		pagesPerPeriod:   max(1, (period+pageSamples-1)/pageSamples),
		pagesPerProducer: max(1, perProducer/pageSamples),
		sessions:         map[int]*pa.SessionEncoder{},
	}
}

// record appends the record of the page-th page to dst.
func (w *sessionRecords) record(dst []byte, page int, samples []pa.Sample) []byte {
	p := (page % w.pagesPerPeriod) / w.pagesPerProducer
	s := w.sessions[p]
	if s == nil {
		s = pa.NewSessionEncoder()
		w.sessions[p] = s
	}
	w.block = s.AppendBlock(w.block[:0], samples)
	dst = pa.AppendPageRecord3Head(dst, fmt.Sprintf("bench-%d", p), "1", true, s.ID(), nil)
	return append(dst, w.block...)
}

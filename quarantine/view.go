package quarantine

import (
	"encoding/json"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
)

// View is an entry as people and tools see it (admin API, `holdfast
// quarantine`): the same JSON from a running collector and from a data
// directory.
type View struct {
	ID           uint64            `json:"id"`
	Kind         string            `json:"kind"` // sample or record
	Time         time.Time         `json:"time"`
	Producer     string            `json:"producer,omitempty"`
	Incarnation  string            `json:"incarnation,omitempty"`
	ReasonCode   string            `json:"reason_code"`
	Reason       string            `json:"reason"`
	WALIndex     uint64            `json:"wal_index,omitempty"`
	RecordType   uint8             `json:"record_type,omitempty"`
	PayloadBytes int               `json:"payload_bytes"`
	Samples      []json.RawMessage `json:"samples,omitempty"` // the page JSON form of each sample
	DecodeError  string            `json:"decode_error,omitempty"`
	Payload      []byte            `json:"payload,omitempty"` // base64; kept when the samples do not decode
}

// ViewOf describes e; with samples it decodes the payload into the samples'
// JSON form (or, when it does not decode, keeps the raw payload).
func ViewOf(e *Entry, samples bool) View {
	v := View{ID: e.ID, Kind: e.Kind.String(), Time: time.Unix(0, e.TimeNs).UTC(), Producer: e.Producer, Incarnation: e.Incarnation,
		ReasonCode: e.Code, Reason: e.Reason, WALIndex: e.WALIndex, RecordType: e.RecordType, PayloadBytes: max(len(e.Payload), e.PayloadBytes)}
	if !samples || len(e.Payload) == 0 {
		return v
	}
	ss, err := e.Samples()
	if err != nil {
		v.DecodeError = err.Error()
		v.Payload = e.Payload
		return v
	}
	for i := range ss {
		b, err := pa.MarshalSampleJSON(&ss[i])
		if err != nil {
			v.DecodeError = err.Error()
			v.Payload = e.Payload
			return v
		}
		v.Samples = append(v.Samples, b)
	}
	return v
}

// Samples decodes the samples an entry holds (structure only, not
// validated). An entry of a sample too large to read holds none.
func (e *Entry) Samples() ([]pa.Sample, error) {
	if len(e.Payload) == 0 {
		return nil, nil
	}
	if e.Kind == KindRecord {
		var rec pa.PageRecord
		err := pa.DecodePageRecord(e.Payload, &rec)
		return rec.Samples, err
	}
	return pa.DecodeSamples(e.Payload, nil)
}

package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// vectorsPath is a copy of ../shared/wire-vectors.json (vectors recorded from
// the original implementation), kept in the repository so that a clone alone
// runs every test; TestVectorsMatchShared checks the copy when shared/ is there.
const vectorsPath = "testdata/wire-vectors.json"

type escapeVector struct {
	Name    string `json:"name"`
	InHex   string `json:"in_hex"`
	WireHex string `json:"wire_hex"`
}

type rejectedVector struct {
	Name    string `json:"name"`
	WireHex string `json:"wire_hex"`
	Note    string `json:"note"`
}

type vectorFile struct {
	Escape   []escapeVector   `json:"escape"`
	Rejected []rejectedVector `json:"rejected"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	check.NoError(t, err)
	var v vectorFile
	check.NoError(t, json.Unmarshal(data, &v))
	check.NotEmpty(t, v.Escape)
	check.NotEmpty(t, v.Rejected)
	return v
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	check.NoError(t, err)
	return b
}

func TestVectorsEscape(t *testing.T) {
	for _, v := range loadVectors(t).Escape {
		t.Run(v.Name, func(t *testing.T) {
			in, wire := mustHex(t, v.InHex), mustHex(t, v.WireHex)

			check.Equal(t, wire, AppendToken(nil, in), "encode")
			check.Equal(t, len(wire), EncodedLen(in))
			check.Equal(t, append([]byte("prefix"), wire...), AppendToken([]byte("prefix"), in))
			for size := 1; size <= len(in); size++ {
				check.Equal(t, wire, appendInPieces(Token1.(PieceEncoder), nil, in, size), "pieces of %d bytes", size)
			}

			for _, cuts := range [][]int{nil, everyByte(len(wire))} {
				frames, err := decodeChunks(t, wire, DefaultMaxTokenSize, cuts)
				check.NoError(t, err)
				check.Len(t, frames, 1)
				check.Equal(t, KindToken, frames[0].Kind)
				check.Equal(t, in, frames[0].Token, "decode")
			}

			// Exactly at the limit is accepted, one under the token's size is not.
			if len(in) > 0 {
				frames, err := decodeChunks(t, wire, len(in), nil)
				check.NoError(t, err)
				check.Equal(t, in, frames[0].Token)
				if len(in) > 1 {
					_, err = decodeChunks(t, wire, len(in)-1, nil)
					check.ErrorIs(t, err, ErrTokenTooLarge)
				}
			}
		})
	}
}

func TestVectorsRejected(t *testing.T) {
	for _, v := range loadVectors(t).Rejected {
		t.Run(v.Name, func(t *testing.T) {
			wire := mustHex(t, v.WireHex)
			want, wantErr := refDecode(wire, DefaultMaxTokenSize)
			for _, cuts := range [][]int{nil, everyByte(len(wire))} {
				frames, err := decodeChunks(t, wire, DefaultMaxTokenSize, cuts)
				if v.WireHex == "5c0a" {
					check.NoError(t, err)
					check.Equal(t, []Frame{{Kind: KindRemoteClose}}, frames)
					continue
				}
				check.Error(t, err, v.Note)
				check.ErrorIs(t, err, ErrInvalidEscape, v.Note)
				check.Empty(t, frames)
				var ie *InvalidEscapeError
				check.True(t, errors.As(err, &ie))
				check.Equal(t, wantErr, err)
				check.Empty(t, want)
			}
		})
	}
}

func TestVectorsRejectedOffsets(t *testing.T) {
	// Spot checks of the offsets against the vector bytes themselves.
	cases := map[string]InvalidEscapeError{
		"5c6f6b0a":     {Offset: 1, Byte: 'o'},
		"6162635c780a": {Offset: 4, Byte: 'x'},
		"5c780a":       {Offset: 1, Byte: 'x'},
		"6162635c0a":   {Offset: 4, Byte: '\n'},
		"5c4e0a":       {Offset: 1, Byte: 'N'},
		"5c5c5c0a":     {Offset: 3, Byte: '\n'},
	}
	for hx, want := range cases {
		d, err := NewDecoder(DefaultMaxTokenSize)
		check.NoError(t, err)
		_, err = d.AppendFrames(nil, mustHex(t, hx))
		var ie *InvalidEscapeError
		check.True(t, errors.As(err, &ie), hx)
		check.Equal(t, want, *ie, hx)
	}
}

// TestVectorsMatchShared checks that the copy in testdata is the file in
// ../shared, where that folder exists beside the checkout.
func TestVectorsMatchShared(t *testing.T) {
	shared, err := os.ReadFile("../../shared/wire-vectors.json")
	if errors.Is(err, fs.ErrNotExist) {
		t.Log("no ../shared beside the checkout: nothing to compare")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	local, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, local) {
		t.Fatal("testdata/wire-vectors.json differs from ../shared/wire-vectors.json: copy it again")
	}
}

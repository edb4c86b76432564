package wire_test

import (
	"fmt"

	"github.com/tokenserver/tokenserver/wire"
)

func Example() {
	// Encode two tokens and the remoteClose control frame.
	var stream []byte
	stream = wire.AppendToken(stream, []byte("hello"))
	stream = wire.AppendToken(stream, []byte("two\nlines \\ and a backslash"))
	stream = wire.AppendRemoteClose(stream)
	fmt.Printf("%q\n", stream)

	// Decode it, fed in two chunks split in the middle of a frame.
	d, err := wire.NewDecoder(wire.DefaultMaxTokenSize)
	if err != nil {
		panic(err)
	}
	var frames []wire.Frame
	for _, chunk := range [][]byte{stream[:10], stream[10:]} {
		frames, err = d.AppendFrames(frames, chunk)
		if err != nil {
			panic(err)
		}
	}
	for _, f := range frames {
		fmt.Printf("%v %q\n", f.Kind, f.Token)
	}

	// A bad escape is a typed error.
	_, err = d.AppendFrames(nil, []byte("oops\\x\n"))
	fmt.Println(err)
	// Output:
	// "hello\ntwo\\nlines \\\\ and a backslash\n\\\n"
	// token "hello"
	// token "two\nlines \\ and a backslash"
	// remoteClose ""
	// wire: invalid escape \x78 at offset 43
}

// npugen's behavioural model of the Lattice ECP5 CCU2C carry cell, for simulation only.
//
// Covers what npugen instantiates (rtl/common/carry.py): INJECT1_0 = INJECT1_1 = "NO". Each
// of the two halves h has a LUT4 (INITh indexed by {Dh, Ch, Bh, Ah}) whose output is the
// bit's propagate; its generate is INITh[{Bh, Ah}] (the LUT4's entries with Ch = Dh = 0,
// read as a LUT2 of Ah and Bh); the sum Sh = propagate ^ carry in; the carry out is the
// carry in where propagate is 1, else the generate. Half 1 takes half 0's carry out; COUT
// is half 1's. Written from the ECP5 family data sheet's slice description (ripple mode);
// any other setting stops the simulation instead of silently simulating something else.
`default_nettype none
module CCU2C #(
    parameter [15:0] INIT0 = 16'h0000,
    parameter [15:0] INIT1 = 16'h0000,
    parameter INJECT1_0 = "YES",
    parameter INJECT1_1 = "YES"
) (
    input wire CIN,
    input wire A0, B0, C0, D0, A1, B1, C1, D1,
    output wire S0, S1, COUT
);
    initial begin
        if (INJECT1_0 != "NO" || INJECT1_1 != "NO") begin
            $display("CCU2C model: unsupported configuration");
            $finish;
        end
    end
    wire p0 = INIT0[{D0, C0, B0, A0}];
    wire g0 = INIT0[{2'b00, B0, A0}];
    wire c1 = p0 ? CIN : g0;
    wire p1 = INIT1[{D1, C1, B1, A1}];
    wire g1 = INIT1[{2'b00, B1, A1}];
    assign S0 = p0 ^ CIN;
    assign S1 = p1 ^ c1;
    assign COUT = p1 ? c1 : g1;
endmodule
`default_nettype wire

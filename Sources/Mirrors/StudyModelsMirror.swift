import Foundation

/// A file a mirror publishes with a known digest: the download must match it.
public struct PinnedFile: Codable, Equatable, Sendable {
    /// Relative to the mirror's base URL.
    public var path: String
    /// Lower-case hex SHA-256 of the file.
    public var sha256: String
    public var size: Int64?

    public init(path: String, sha256: String, size: Int64? = nil) {
        self.path = path
        self.sha256 = sha256
        self.size = size
    }
}

extension MirrorDefinition {
    /// The study's published fold models, each pinned by the SHA-256 of the published file.
    public static let studyModels = MirrorDefinition(
        name: "study-models", layout: .http,
        baseURL: "https://portal.nersc.gov/project/m3795/hrtem-generalization/models/",
        description: "The study's 50 trained fold models (torch.save of whole modules, .h5 suffix), SHA-256 pinned; the base URL is a guess: point HRTEM_MIRROR_STUDY_MODELS_URL at the real host",
        files: [
            PinnedFile(path: "UNet_10nmAu330kX425eUTC_fold0_seed962_model.h5", sha256: "384217154697316468a70cb7db8536f0f0381194f7a131fc44f86494e8d96454", size: 583773),
            PinnedFile(path: "UNet_10nmAu330kX425eUTC_fold1_seed1662_model.h5", sha256: "bfcfad652d15fa0adf871c96f08dcd1837b61c47872e21736648b11b9a0b45d1", size: 583773),
            PinnedFile(path: "UNet_10nmAu330kX425eUTC_fold2_seed621_model.h5", sha256: "87f2a2b845735be4a22bb01c4274c9b27cfee52918a9aee30e9da4e875874f61", size: 583773),
            PinnedFile(path: "UNet_10nmAu330kX425eUTC_fold3_seed72115_model.h5", sha256: "99cc38b7439ef32aa1595d40e0e680bb913e76366148d0603a820f98b35c8d29", size: 583773),
            PinnedFile(path: "UNet_10nmAu330kX425eUTC_fold4_seed45521_model.h5", sha256: "aff15a387aacd89bde687122dc9678be8a04705885aad100856852f7c429262d", size: 583773),
            PinnedFile(path: "UNet_2p2nmAu330kX423eUTC_fold0_seed962_model.h5", sha256: "9ab51fa036def0fb43f4ad94bd028ccaece01412804abe700012c4afa4ee0d0e", size: 583773),
            PinnedFile(path: "UNet_2p2nmAu330kX423eUTC_fold1_seed1662_model.h5", sha256: "46dae62a8df175926c47bb49a82c2d1c124b1fa2d19a8a6a12389dab5d99b9e5", size: 583773),
            PinnedFile(path: "UNet_2p2nmAu330kX423eUTC_fold2_seed621_model.h5", sha256: "ad6e13f383455225729bd676ffd033d008247727dab9a605914d003047cea6d5", size: 583773),
            PinnedFile(path: "UNet_2p2nmAu330kX423eUTC_fold3_seed72115_model.h5", sha256: "2ace7a0934ae25a06210893d3d915ee317d8b405407769ed7694cc4779c83852", size: 583773),
            PinnedFile(path: "UNet_2p2nmAu330kX423eUTC_fold4_seed45521_model.h5", sha256: "4e6e9cf736cba829d31a3fbf0704d9078a29e85b7ad08ef96677926b71404b6d", size: 583773),
            PinnedFile(path: "UNet_5nmAg330kX423eUTC_fold0_seed962_model.h5", sha256: "2265db89c9e8100dd81a444d11fa08d325ede627b6d01a1aa1e83ae18c1046f3", size: 583773),
            PinnedFile(path: "UNet_5nmAg330kX423eUTC_fold1_seed1662_model.h5", sha256: "79627b989b81a6f16b4dcbff7f124f36f04869710f4775e39fce5ee156c25075", size: 583773),
            PinnedFile(path: "UNet_5nmAg330kX423eUTC_fold2_seed621_model.h5", sha256: "d0b9a6fc627efad549ceb004be7cb3d0ff4082e4994085a6019ea7c7af157646", size: 583773),
            PinnedFile(path: "UNet_5nmAg330kX423eUTC_fold3_seed72115_model.h5", sha256: "d0dd3cb00be4745fb749bb26c3e019faade35c41daf1adf9edb4b3d45d787b59", size: 583773),
            PinnedFile(path: "UNet_5nmAg330kX423eUTC_fold4_seed45521_model.h5", sha256: "3067c05263b32f1e91ee0a9b5082206f62f12018755a6118f674809d01f77407", size: 583773),
            PinnedFile(path: "UNet_5nmAu160kX425eUTC_fold0_seed962_model.h5", sha256: "741ee1e84ba4cb5e387bd63043f379868e63b24277ea16552a16c7721ccb5052", size: 583773),
            PinnedFile(path: "UNet_5nmAu160kX425eUTC_fold1_seed1662_model.h5", sha256: "c653329672ec3167a890809ad2a06f6ef4ef828de7e1805a21cf216bd1d940c2", size: 583773),
            PinnedFile(path: "UNet_5nmAu160kX425eUTC_fold2_seed621_model.h5", sha256: "48558fa2f866b7c99baf579f1ecf84bf4d011c754e889544d2b3df803d2b6413", size: 583773),
            PinnedFile(path: "UNet_5nmAu160kX425eUTC_fold3_seed72115_model.h5", sha256: "eedf1a9f02e7b3d266bbbd347ad9bd87b04ef5d532a6a63c58ec93854a7c69ce", size: 583773),
            PinnedFile(path: "UNet_5nmAu160kX425eUTC_fold4_seed45521_model.h5", sha256: "0852d18a1a59ad0d8b2af8cc2b9f7cdf733e7a412d0231fffea94b1fb88bc88a", size: 583773),
            PinnedFile(path: "UNet_5nmAu205kX420eUTC_fold0_seed962_model.h5", sha256: "26a0fdcc10b8c612a97207a98949679ab58838e731be7f04e1dbdc50b30baa30", size: 583773),
            PinnedFile(path: "UNet_5nmAu205kX420eUTC_fold1_seed1662_model.h5", sha256: "2f23a8970b5190617f5331197764e7dd6f228e321d88ff3c485c7c423f00ad9b", size: 583773),
            PinnedFile(path: "UNet_5nmAu205kX420eUTC_fold2_seed621_model.h5", sha256: "84b306bb52d505587eb22300fe82acb3f8a508af9ff039ff7f64af42930f97b4", size: 583773),
            PinnedFile(path: "UNet_5nmAu205kX420eUTC_fold3_seed72115_model.h5", sha256: "55d5eef2f91fd79654e8a510527425da8081f8d68d62b88cd19602a42322559d", size: 583773),
            PinnedFile(path: "UNet_5nmAu205kX420eUTC_fold4_seed45521_model.h5", sha256: "fb6f69ca98372f0fd27af318e58a8c75ac20af7f95e050215a2afcc54c179756", size: 583773),
            PinnedFile(path: "UNet_5nmAu260kX450eUTC_fold0_seed962_model.h5", sha256: "5422924ad015e52ad299d89b345f1668f27539d5a3058b4e56c580acd27537c4", size: 583773),
            PinnedFile(path: "UNet_5nmAu260kX450eUTC_fold1_seed1662_model.h5", sha256: "111a7fb18ca75cf0c4eff6e5de326c0f8b20253da593067505539a5f74d1a90d", size: 583773),
            PinnedFile(path: "UNet_5nmAu260kX450eUTC_fold2_seed621_model.h5", sha256: "51e37a1cccfeee3907181c717a593e53e9e55d29ea9db757061f7585efbdeab0", size: 583773),
            PinnedFile(path: "UNet_5nmAu260kX450eUTC_fold3_seed72115_model.h5", sha256: "846fe124d35f83abc2362463a693e6a1173689524b8031515ee576ad09bbd71f", size: 583773),
            PinnedFile(path: "UNet_5nmAu260kX450eUTC_fold4_seed45521_model.h5", sha256: "f3bb8c967ac64027c0cdc542d92b2e0203392d379cb2ab4e770de74a652bddff", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX423eUTC_fold0_seed962_model.h5", sha256: "472676dbd02c71e22bfae5a2032cde605e010791377d2d329e22a2aa7382eda9", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX423eUTC_fold1_seed1662_model.h5", sha256: "3eee2afa50579bea296b284cf74ef2448aae7ccf204ccb12362fa04d468bcef6", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX423eUTC_fold2_seed621_model.h5", sha256: "b3d0375ea8afc210854187f75066d9ffce252deac95a4e28241f3ff226ec611c", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX423eUTC_fold3_seed72115_model.h5", sha256: "30804dd85b14c6e36ca0e1929a6ab839674f047412da08f85022174fd99cd39f", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX423eUTC_fold4_seed45521_model.h5", sha256: "7e5d9e6738bbe3986caa50f1c652706fd738a03e0c41eda5713bde210dfb6d51", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX80eUTC_fold0_seed962_model.h5", sha256: "8376c5a896f5290994ba80e7761bf57d3f2b5f2be33af6358247559b2fc9c26c", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX80eUTC_fold1_seed1662_model.h5", sha256: "0eeef56e35952dd9aad3e765d19bba40fb0cdee86f8fdf2105a1bde0af0f872a", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX80eUTC_fold2_seed621_model.h5", sha256: "5551c66701e22756e4b952485bc1ecde00113db1b4532f43c12aa7d4ce0fd6d3", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX80eUTC_fold3_seed72115_model.h5", sha256: "2ef3bf7df5f5abdb4c83cb29951cd68b6f51c63e85a3fd6d08748c8d18398045", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX80eUTC_fold4_seed45521_model.h5", sha256: "95162bd8349f8cd2bac97c6744acf59ca207bfb7ff80f563533b6974c922d7c6", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX884eUTC_fold0_seed962_model.h5", sha256: "fe06905c0951aede08113ff3a258af5afb38a448e69ef785a6a167f72f69d323", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX884eUTC_fold1_seed1662_model.h5", sha256: "84c797010d974db11bdcd28409352dfe1bbfcdb2c94846dc2a6862049a6b9e20", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX884eUTC_fold2_seed621_model.h5", sha256: "25acade592f75714245eeba8b37e34f8b2ca20ccbe81f23f9408f0c34d929671", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX884eUTC_fold3_seed72115_model.h5", sha256: "b452cc371fd98820040c7449fd31a505e491c49528887d45ccc799c35b25fce5", size: 583773),
            PinnedFile(path: "UNet_5nmAu330kX884eUTC_fold4_seed45521_model.h5", sha256: "b7eb26f908659a402af137d23c9aee76321e8537e764ebe108d2fa8775956e89", size: 583773),
            PinnedFile(path: "UNet_5nmCdSe330kX421eUTC_fold0_seed962_model.h5", sha256: "ec8c5993d7b01561d5a710e8693fe6d6341a860c5c2a5cebb0d0c6282ab4e9ea", size: 583773),
            PinnedFile(path: "UNet_5nmCdSe330kX421eUTC_fold1_seed1662_model.h5", sha256: "761ac5a5ce6b3a090b156b4bcdc4226202b7bedefefd2299fffdc65263ae7ae7", size: 583773),
            PinnedFile(path: "UNet_5nmCdSe330kX421eUTC_fold2_seed621_model.h5", sha256: "cfe186526b3f3bdd8ca6f5176a73e69848b233ba7a661f96d649a086ec55a208", size: 583773),
            PinnedFile(path: "UNet_5nmCdSe330kX421eUTC_fold3_seed72115_model.h5", sha256: "c0418721601af310b5fffb19554439242734ba8d693ef1c2f34a6fabab389e43", size: 583773),
            PinnedFile(path: "UNet_5nmCdSe330kX421eUTC_fold4_seed45521_model.h5", sha256: "0e259cb333c44a3b430ecaa2d68a02e40405eb30082069c7044a84abac98f964", size: 583773),
        ])
}
